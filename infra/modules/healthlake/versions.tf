terraform {
  # optional() attributes with defaults in object variables need 1.3; 1.5 is the oldest release
  # this module is meant to be planned with.
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.79 has every argument used here (provisioned_poller_config on Kafka event source
      # mappings came in 5.79); tests/infra/test_provider_schema.py checks the names against the
      # schemas of 5.79.0 and 6.25.0.
      version = ">= 5.79, < 7.0"
    }
  }
}
