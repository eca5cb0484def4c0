terraform {
  # optional() attributes with defaults in object variables need 1.3; 1.5 is the oldest release
  # this module is meant to be planned with.
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.80 has every argument used here: provisioned_poller_config on Kafka event source
      # mappings (5.79), logging_config on functions (5.26), aws_scheduler_schedule (4.66),
      # deletion_protection_enabled on DynamoDB tables (4.x). 6.x keeps them all.
      version = ">= 5.80, < 7.0"
    }
  }
}
