"""Checks that the AWS emulator keeps the guarantee of real Glue that Iceberg commits rely on:
UpdateTable with a stale VersionId is refused (ConcurrentModificationException).

usage: check_emulator.py ENDPOINT_URL
"""

import sys
import uuid

import boto3


def main(endpoint):
    glue = boto3.client("glue", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")
    database = f"cas_check_{uuid.uuid4().hex[:8]}"
    glue.create_database(DatabaseInput={"Name": database})
    glue.create_table(DatabaseName=database, TableInput={"Name": "t", "Parameters": {"v": "1"}})
    version = glue.get_table(DatabaseName=database, Name="t")["Table"]["VersionId"]
    glue.update_table(DatabaseName=database, TableInput={"Name": "t", "Parameters": {"v": "2"}}, VersionId=version)
    try:
        glue.update_table(DatabaseName=database, TableInput={"Name": "t", "Parameters": {"v": "3"}}, VersionId=version)
    except glue.exceptions.ConcurrentModificationException:
        print("ok   the emulator's Glue refuses a stale VersionId")
    else:
        print("FAIL the emulator's Glue accepted a stale VersionId", file=sys.stderr)
        sys.exit(1)
    finally:
        glue.delete_table(DatabaseName=database, Name="t")
        glue.delete_database(Name=database)


if __name__ == "__main__":
    main(sys.argv[1])
