# What the other files share: the account and region, the functions map, and the environment
# every function starts with. The resources live in one file per concern:
#   storage.tf   warehouse bucket (tables + failed Kafka batches)
#   glue.tf      Glue database (the Iceberg catalog)
#   state.tf     DynamoDB state table
#   functions.tf log groups and functions
#   kafka.tf     event source mapping feeding ingest
#   schedules.tf EventBridge Scheduler schedules of finalize and maintain, dead-letter queue
#   iam.tf       one role per function, the scheduler's role
#   alarms.tf    CloudWatch alarms (AWS/Lambda and the functions' EMF metrics)
#   dashboard.tf CloudWatch dashboard

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  # `name` is the attribute every 5.x and 6.x provider has (6.x adds `region` as its alias).
  region = data.aws_region.current.name

  # The functions, one entry each. Everything per function (role, policy, log group, function,
  # outputs) is derived from this map: adding a function is one entry here, its binary in
  # scripts/package-lambdas.sh and, if it needs new permissions, a capability.
  #   binary             the cargo-lambda binary, i.e. the zip's directory
  #   memory_size/timeout defaults, overridable through var.function_settings
  #   dynamodb_actions   the state-table calls its code makes (lib/state/src/dynamodb); none: no
  #                      state-table statement at all
  #   creates_tables     loads the tables with Lakehouse::table, which creates a missing database
  #                      or table (glue:CreateDatabase, CreateTable)
  #   deletes_objects    deletes warehouse files (lib/lake's maintenance: snapshot expiry, old
  #                      metadata files, orphan removal, compaction: s3:DeleteObject)
  #   reads_kafka        invoked by the Kafka event source mapping (its permissions)
  #   invoked_async      invoked asynchronously (by EventBridge Scheduler): failures after
  #                      Lambda's own retries go to the dead-letter queue
  functions = {
    # A batch of up to 6 MB of Avro decoded, validated, written as Parquet to two tables and
    # merged into accumulators: memory buys CPU (1769 MB = one vCPU); 300 s leaves room for
    # commit retries under contention and stays below the mapping's 14-minute limit.
    ingest = {
      binary           = "healthlake-ingest"
      description      = "healthlake: Kafka batches to health_data_raw / health_data_errors and window accumulators"
      memory_size      = 1024
      timeout          = 300
      dynamodb_actions = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:ConditionCheckItem"]
      creates_tables   = true
      deletes_objects  = false
      reads_kafka      = true
      invoked_async    = false
    }
    # Reads every open accumulator of the closing windows and upserts the aggregate tables
    # (copy-on-write rewrites of the touched files): the longest regular run, so the full 900 s.
    finalize = {
      binary           = "healthlake-finalize"
      description      = "healthlake: emits and closes daily/weekly/monthly windows (input {\"kind\": ...})"
      memory_size      = 1024
      timeout          = 900
      dynamodb_actions = ["dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:UpdateItem"]
      creates_tables   = true
      deletes_objects  = false
      reads_kafka      = false
      invoked_async    = true
    }
    # Scans a range of health_data_raw and recomputes windows in memory: the most memory.
    backfill = {
      binary           = "healthlake-backfill"
      description      = "healthlake: recomputes windows of an event-time range from health_data_raw (invoked by hand)"
      memory_size      = 2048
      timeout          = 900
      dynamodb_actions = ["dynamodb:Query", "dynamodb:UpdateItem"]
      creates_tables   = true
      deletes_objects  = false
      reads_kafka      = false
      invoked_async    = false
    }
    # Iceberg maintenance of one table per invocation, scheduled per table (schedules.tf):
    # compaction reads and rewrites whole partitions in memory, hence backfill's 2048 MB; the
    # full 900 s, and a run whose time budget ends first answers "complete": false and the next
    # scheduled run resumes (compaction re-plans from the table's current state). It loads
    # existing tables only (a missing one is skipped), never touches the state table (App::open
    # makes no DynamoDB call), and is the one function that deletes objects: the files of
    # expired snapshots, old metadata files, orphans, and what a compaction that lost its commit
    # wrote.
    maintain = {
      binary           = "healthlake-maintain"
      description      = "healthlake: compacts, rewrites manifests, expires snapshots and removes orphan files of one table (input {\"table\": ..., \"operations\": [...]})"
      memory_size      = 2048
      timeout          = 900
      dynamodb_actions = []
      creates_tables   = false
      deletes_objects  = true
      reads_kafka      = false
      invoked_async    = true
    }
  }

  function_names = { for key, f in local.functions : key => "${var.name}-${key}" }

  function_config = {
    for key, f in local.functions : key => {
      memory_size                    = coalesce(try(var.function_settings[key].memory_size, null), f.memory_size)
      timeout                        = coalesce(try(var.function_settings[key].timeout, null), f.timeout)
      reserved_concurrent_executions = coalesce(try(var.function_settings[key].reserved_concurrent_executions, null), -1)
      zip                            = "${var.lambda_artifacts_dir}/${var.architecture}/${f.binary}/bootstrap.zip"
    }
  }

  create_bucket = var.existing_bucket_name == null
  bucket_name   = local.create_bucket ? coalesce(var.bucket_name, "${var.name}-warehouse-${local.account_id}-${local.region}") : var.existing_bucket_name
  bucket_arn    = "arn:${local.partition}:s3:::${local.bucket_name}"
  warehouse_uri = "s3://${local.bucket_name}/${var.warehouse_prefix}"

  table_names = {
    raw         = var.table_names.raw
    errors      = var.table_names.errors
    daily_agg   = var.table_names.daily_agg
    weekly_agg  = var.table_names.weekly_agg
    monthly_agg = var.table_names.monthly_agg
  }

  # The pipeline's tunables at the spec's defaults (README's configuration table); var.settings
  # is merged over them.
  default_settings = {
    WATERMARK_MAX_OUT_OF_ORDERNESS            = "10"
    DAILY_WINDOW_ALLOWED_LATENESS             = "1"
    WEEKLY_WINDOW_ALLOWED_LATENESS            = "6"
    MONTHLY_WINDOW_ALLOWED_LATENESS           = "12"
    STATE_TTL_DAYS                            = "7"
    VALIDATION_ENABLED                        = "true"
    VALIDATION_STRICT_MODE                    = "false"
    MIN_HEART_RATE                            = "30"
    MAX_HEART_RATE                            = "250"
    MAX_STEPS_PER_DAY                         = "100000"
    HEALTHLAKE_DYNAMODB_SHARDS                = "16"
    HEALTHLAKE_PARTITION_IDLE_TIMEOUT_MINUTES = "30"
    HEALTHLAKE_MAX_FUTURE_SKEW_HOURS          = "24"
    HEALTHLAKE_VALUE_SANITY_LIMITS            = "*=1e9"
  }

  # What every function reads at start (lib/pipeline/src/config/env.rs). Never AWS_REGION:
  # Lambda sets it, and healthlake takes it as the S3 and Glue region. No secret appears here:
  # the registry's credentials are read from Secrets Manager by the functions themselves.
  environment = merge(
    local.default_settings,
    var.settings,
    {
      ICEBERG_CATALOG_TYPE      = "glue"
      ICEBERG_CATALOG_NAME      = var.catalog_name
      ICEBERG_WAREHOUSE         = local.warehouse_uri
      ICEBERG_DATABASE          = aws_glue_catalog_database.lake.name
      ICEBERG_TABLE_RAW         = local.table_names.raw
      ICEBERG_TABLE_ERRORS      = local.table_names.errors
      ICEBERG_TABLE_DAILY_AGG   = local.table_names.daily_agg
      ICEBERG_TABLE_WEEKLY_AGG  = local.table_names.weekly_agg
      ICEBERG_TABLE_MONTHLY_AGG = local.table_names.monthly_agg
      # healthlake defaults to path-style requests (for MinIO and emulators); AWS prefers
      # virtual-hosted-style.
      S3_PATH_STYLE_ACCESS      = "false"
      KAFKA_TOPIC               = var.kafka.topic
      HEALTHLAKE_STATE_STORE    = "dynamodb"
      HEALTHLAKE_DYNAMODB_TABLE = aws_dynamodb_table.state.name
      LOG_LEVEL                 = var.log_level
      LOG_FORMAT                = var.log_format
      METRICS_ENABLED           = "true"
      # CloudWatch namespace of the functions' EMF metrics (alarms.tf and dashboard.tf read it).
      HEALTHLAKE_METRICS_NAMESPACE = var.metrics_namespace
    },
    # Optional ones, left out when unset (a for expression, since `cond ? {} : {...}` would
    # mix two object types).
    { for name, value in {
      HEALTHLAKE_TOPIC_PARTITIONS       = var.kafka.partitions == null ? null : tostring(var.kafka.partitions)
      SCHEMA_REGISTRY_URL               = var.schema_registry.url
      HEALTHLAKE_SCHEMA_REGISTRY_SECRET = var.schema_registry.secret_arn
    } : name => value if value != null },
  )

  tags = merge({ application = "healthlake" }, var.tags)
}
