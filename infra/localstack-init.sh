#!/bin/bash
# LocalStack init hook: create the report bucket once S3 is ready.
awslocal s3 mb s3://crash-reports || true
