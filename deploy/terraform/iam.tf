# IRSA roles for the chart's service accounts (the chart annotates each with its role ARN):
#   gateway   serviceAccount.roleArn             the bucket (snapshots, history, clickstream); the
#                                                VictoriaMetrics backup (<fullname>-metrics) shares it
#   dashboard dashboard.serviceAccount.roleArn   cost and pricing reads (the dashboard's cost tab)
#   operator  operator.serviceAccount.roleArn    the bucket and the Function image repository
# Each role trusts the cluster's OIDC provider for exactly its service accounts in the release's
# namespace, and the sts.amazonaws.com audience.

data "aws_iam_policy_document" "irsa_trust" {
  for_each = {
    gateway   = local.gateway_subjects
    operator  = local.operator_subjects
    dashboard = local.dashboard_subjects
  }

  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer_host}:sub"
      values   = each.value
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "gateway" {
  name               = "${var.name}-gateway"
  description        = "Layer gateway (IRSA): the snapshot/history bucket"
  assume_role_policy = data.aws_iam_policy_document.irsa_trust["gateway"].json
}

resource "aws_iam_role" "operator" {
  name               = "${var.name}-operator"
  description        = "Layer operator and workers (IRSA): the bucket and the Function images"
  assume_role_policy = data.aws_iam_policy_document.irsa_trust["operator"].json
}

resource "aws_iam_role" "dashboard" {
  name               = "${var.name}-dashboard"
  description        = "Layer dashboard (IRSA): cost, pricing and CloudWatch reads"
  assume_role_policy = data.aws_iam_policy_document.irsa_trust["dashboard"].json
}

# Read/write of the install's bucket and use of its KMS key (SSE-KMS needs both).
data "aws_iam_policy_document" "bucket_rw" {
  statement {
    sid       = "ListBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
    resources = [aws_s3_bucket.data.arn]
  }
  statement {
    sid = "Objects"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.data.arn}/*"]
  }
  statement {
    sid       = "BucketKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.data.arn]
  }
}

resource "aws_iam_role_policy" "gateway_bucket" {
  name   = "bucket"
  role   = aws_iam_role.gateway.id
  policy = data.aws_iam_policy_document.bucket_rw.json
}

resource "aws_iam_role_policy" "operator_bucket" {
  name   = "bucket"
  role   = aws_iam_role.operator.id
  policy = data.aws_iam_policy_document.bucket_rw.json
}

data "aws_iam_policy_document" "operator_images" {
  count = var.create_ecr_repositories ? 1 : 0

  statement {
    sid       = "Token"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # GetAuthorizationToken has no resource-level permissions
  }
  statement {
    sid = "FunctionImages"
    actions = [
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
      "ecr:BatchCheckLayerAvailability",
      "ecr:DescribeImages",
      "ecr:ListImages",
    ]
    resources = [aws_ecr_repository.this["functions"].arn]
  }
}

resource "aws_iam_role_policy" "operator_images" {
  count  = var.create_ecr_repositories ? 1 : 0
  name   = "function-images"
  role   = aws_iam_role.operator.id
  policy = data.aws_iam_policy_document.operator_images[0].json
}

# The dashboard's cost tab: Cost Explorer, the Price List API and CloudWatch metrics, read only.
data "aws_iam_policy_document" "dashboard_cost_read" {
  #checkov:skip=CKV_AWS_356:Cost Explorer, Pricing and CloudWatch read actions have no resource-level permissions.
  statement {
    sid = "CostRead"
    actions = [
      "ce:GetCostAndUsage",
      "ce:GetCostForecast",
      "ce:GetDimensionValues",
      "ce:GetTags",
      "pricing:GetProducts",
      "pricing:DescribeServices",
      "pricing:GetAttributeValues",
      "cloudwatch:GetMetricData",
      "cloudwatch:GetMetricStatistics",
      "cloudwatch:ListMetrics",
      "ec2:DescribeInstances",
      "ec2:DescribeInstanceTypes",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "dashboard_cost_read" {
  name   = "cost-read"
  role   = aws_iam_role.dashboard.id
  policy = data.aws_iam_policy_document.dashboard_cost_read.json
}
