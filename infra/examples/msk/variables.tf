variable "region" {
  description = "AWS region of the cluster and of everything the module creates."
  type        = string
}

variable "name" {
  description = "Resource name prefix."
  type        = string
  default     = "healthlake"
}

variable "lambda_artifacts_dir" {
  description = "Where scripts/package-lambdas.sh put the zips (~/.cache/healthlake/lambda)."
  type        = string
}

variable "architecture" {
  description = "arm64 or x86_64; the zips must be built for it."
  type        = string
  default     = "arm64"
}

variable "msk_cluster_arn" {
  description = "ARN of the MSK cluster (IAM access control enabled)."
  type        = string
}

variable "topic" {
  description = "Topic of health samples."
  type        = string
  default     = "health-data-raw"
}

variable "topic_partitions" {
  description = "Partition count of the topic (HEALTHLAKE_TOPIC_PARTITIONS); null to leave unset."
  type        = number
  default     = null
}

variable "schema_registry_url" {
  description = "Confluent-compatible schema registry URL; null: JSON values only."
  type        = string
  default     = null
}

variable "schema_registry_secret_arn" {
  description = "Secrets Manager secret {\"username\": ..., \"password\": ...} of the registry; null: no authentication."
  type        = string
  default     = null
}

variable "settings" {
  description = "Pipeline tunables (lateness, validation, ...) over the spec's defaults."
  type        = map(string)
  default     = {}
}

variable "state_table_deletion_protection" {
  description = "Refuse to delete the state table; set false (and apply) before terraform destroy."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Let terraform destroy delete the bucket with every table file in it."
  type        = bool
  default     = false
}

variable "alarm_topic_arn" {
  description = "SNS topic the CloudWatch alarms notify when they fire and recover; null: no notification."
  type        = string
  default     = null
}
