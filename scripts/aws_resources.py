"""Creates healthlake's AWS resources on an emulator (moto or LocalStack), idempotently.

The same resources infra/ describes for AWS: the lake bucket, the state table (keys, the sparse
`by_window` index of open accumulators, TTL on `ttl`) and the Glue database. Names come from the
same environment variables the functions read.

usage: aws_resources.py ENDPOINT_URL
"""

import os
import sys
from urllib.parse import urlparse

import boto3
from botocore.exceptions import ClientError


def env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def main() -> None:
    endpoint = sys.argv[1]
    region = env("AWS_REGION", "us-east-1")
    session = boto3.session.Session(
        aws_access_key_id=env("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=env("AWS_SECRET_ACCESS_KEY", "testing"),
        region_name=region,
    )
    warehouse = env("ICEBERG_WAREHOUSE", "s3://healthlake-lake/warehouse")
    bucket = urlparse(warehouse).netloc
    table = env("HEALTHLAKE_DYNAMODB_TABLE", "healthlake-state")
    database = env("ICEBERG_DATABASE", "health_db")

    s3 = session.client("s3", endpoint_url=endpoint)
    try:
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    except ClientError as e:
        if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise

    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    try:
        dynamodb.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
                {"AttributeName": "gsi_pk", "AttributeType": "S"},
                {"AttributeName": "gsi_sk", "AttributeType": "N"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by_window",
                    "KeySchema": [
                        {"AttributeName": "gsi_pk", "KeyType": "HASH"},
                        {"AttributeName": "gsi_sk", "KeyType": "RANGE"},
                    ],
                    # As DynamoDbStore::create_table: the index names open items, finalize
                    # re-reads them from the table.
                    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["user_id", "data_type"]},
                }
            ],
        )
        dynamodb.get_waiter("table_exists").wait(TableName=table)
        dynamodb.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
        )
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceInUseException":
            raise

    glue = session.client("glue", endpoint_url=endpoint)
    try:
        glue.create_database(DatabaseInput={"Name": database, "LocationUri": warehouse})
    except ClientError as e:
        if e.response["Error"]["Code"] != "AlreadyExistsException":
            raise
    print(f"bucket {bucket}, DynamoDB table {table}, Glue database {database} ready at {endpoint}")


if __name__ == "__main__":
    main()
