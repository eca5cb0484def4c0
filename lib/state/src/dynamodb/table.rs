//! Creating the table and its index (for local emulators and tests; production tables come from
//! Terraform, which must describe the same keys and projection).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType,
};

use super::errors::{count, request_failed};
use super::{DynamoDbStore, INDEX};
use crate::StoreError;

impl DynamoDbStore {
    /// Creates the table and its index as the deployment describes them (for local emulators
    /// and tests; production tables come from Terraform).
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let attr = |name: &str, t: ScalarAttributeType| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(t).build().expect("attribute")
        };
        let key =
            |name: &str, t: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(t).build().expect("key");
        count("CreateTable");
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk", ScalarAttributeType::S))
            .attribute_definitions(attr("sk", ScalarAttributeType::S))
            .attribute_definitions(attr("gsi_pk", ScalarAttributeType::S))
            .attribute_definitions(attr("gsi_sk", ScalarAttributeType::N))
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(INDEX)
                    .key_schema(key("gsi_pk", KeyType::Hash))
                    .key_schema(key("gsi_sk", KeyType::Range))
                    // Finalize re-reads the items themselves; the index only names them. With
                    // ALL, every merge's write would be copied whole into the index too.
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::Include)
                            .non_key_attributes("user_id")
                            .non_key_attributes("data_type")
                            .build(),
                    )
                    .build()
                    .expect("index"),
            )
            .send()
            .await
            .map_err(|e| request_failed("CreateTable", e))?;
        Ok(())
    }
}
