# The window state: accumulators, close markers and partition progress in one table, laid out
# exactly as lib/state/src/dynamodb/table.rs creates it for emulators and tests (keys, the
# sparse by_window index, its INCLUDE projection) and as mod.rs/finalize.rs use it (TTL on `ttl`).
# tests/infra/test_wiring.py checks the two stay the same.

resource "aws_dynamodb_table" "state" {
  name         = var.state_table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  range_key    = "sk"

  deletion_protection_enabled = var.state_table_deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  # Set on open accumulators only (`open#<kind>#<shard>`, shard = hash(user) mod
  # HEALTHLAKE_DYNAMODB_SHARDS) and removed when a window closes: the index lists open windows.
  attribute {
    name = "gsi_pk"
    type = "S"
  }

  # The window's end in microseconds: finalize queries `gsi_sk <= end`.
  attribute {
    name = "gsi_sk"
    type = "N"
  }

  global_secondary_index {
    name            = "by_window"
    hash_key        = "gsi_pk"
    range_key       = "gsi_sk"
    projection_type = "INCLUDE"
    # Finalize re-reads the items with consistent reads; the index only names them. With ALL,
    # every merge's write would be copied whole into the index.
    non_key_attributes = ["user_id", "data_type"]
  }

  # Closing a window sets `ttl` (epoch seconds) STATE_TTL_DAYS ahead; DynamoDB then deletes it.
  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.state_table_kms_key_arn
  }

  tags = local.tags
}
