//! The registry's credentials from Secrets Manager (`HEALTHLAKE_SCHEMA_REGISTRY_SECRET`), read
//! once at start so a Lambda function carries no secret in its plain environment.

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};
use serde::Deserialize;

use crate::config::SchemaRegistrySettings;
use crate::config::env::HEALTHLAKE_SCHEMA_REGISTRY_SECRET;

/// Why the secret gave no credentials. The message names the variable and the secret.
#[derive(Debug, thiserror::Error)]
#[error("{HEALTHLAKE_SCHEMA_REGISTRY_SECRET}={secret_id}: {reason}")]
pub struct CredentialsError {
    pub secret_id: String,
    pub reason: String,
}

/// The secret's JSON, as the RDS/MSK secrets of Secrets Manager spell it.
#[derive(Deserialize)]
struct BasicAuthSecret {
    username: String,
    password: String,
}

/// Replaces a `credentials_secret` with the basic auth credentials it holds. Does nothing when
/// the settings name no secret. Region and endpoint come from the default AWS chain
/// (`AWS_REGION`; `AWS_ENDPOINT_URL_SECRETS_MANAGER` for an emulator).
pub async fn resolve_secret(settings: &mut SchemaRegistrySettings) -> Result<(), CredentialsError> {
    let SchemaRegistrySettings::Http { basic_auth, credentials_secret, .. } = settings else { return Ok(()) };
    let Some(secret_id) = credentials_secret.take() else { return Ok(()) };
    let error = |reason: String| CredentialsError { secret_id: secret_id.clone(), reason };
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let answer = client.get_secret_value().secret_id(&secret_id).send().await.map_err(|e| {
        // The service's code and message when it answered; the whole chain (connection,
        // credentials, timeout) when it did not.
        error(match (e.code(), e.message()) {
            (Some(code), Some(message)) => format!("GetSecretValue failed: {code}: {message}"),
            _ => format!("GetSecretValue failed: {}", DisplayErrorContext(&e)),
        })
    })?;
    let text =
        answer.secret_string().ok_or_else(|| error("the secret has no SecretString (a binary secret)".into()))?;
    *basic_auth = Some(parse(text).map_err(error)?);
    Ok(())
}

/// `{"username": ..., "password": ...}`; the reason never quotes the secret's text.
fn parse(text: &str) -> Result<(String, String), String> {
    let secret: BasicAuthSecret = serde_json::from_str(text).map_err(|e| {
        format!(
            "the SecretString is not JSON with string fields \"username\" and \"password\" (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    if secret.username.is_empty() {
        return Err("the secret's \"username\" is empty".into());
    }
    Ok((secret.username, secret.password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_holds_a_username_and_password() {
        assert_eq!(parse(r#"{"username": "svc", "password": "pw", "extra": 1}"#), Ok(("svc".into(), "pw".into())));
        let err = parse(r#"{"user": "svc", "password": "hunter2"}"#).unwrap_err();
        assert!(err.contains("username") && !err.contains("hunter2"), "{err}");
        assert!(parse("hunter2").unwrap_err().contains("not JSON"));
        assert!(parse(r#"{"username": "", "password": "pw"}"#).is_err());
    }

    #[tokio::test]
    async fn settings_without_a_secret_are_left_alone() {
        let mut settings = SchemaRegistrySettings::Directory("/schemas".into());
        resolve_secret(&mut settings).await.unwrap();
        assert_eq!(settings, SchemaRegistrySettings::Directory("/schemas".into()));
    }
}
