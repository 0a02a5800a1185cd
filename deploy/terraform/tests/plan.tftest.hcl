# `terraform test` plans of deploy/terraform with mocked providers (the schema-only provider in
# schema_provider/ serves the schemas; scripts/test and test_terraform_cli.py set it up). Values
# the providers would compute are mocked during plan (override_during = plan).

mock_provider "aws" {
  override_during = plan

  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"] }
  }
  mock_data "aws_eks_cluster" {
    defaults = {
      endpoint              = "https://EXISTING.gr7.us-east-1.eks.amazonaws.com"
      certificate_authority = [{ data = "Y2E=" }]
      identity              = [{ oidc = [{ issuer = "https://oidc.eks.us-east-1.amazonaws.com/id/EXISTING" }] }]
    }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_route53_zone" {
    defaults = { zone_id = "ZEXISTING" }
  }
  mock_resource "aws_eks_cluster" {
    defaults = {
      arn                   = "arn:aws:eks:us-east-1:123456789012:cluster/layer"
      endpoint              = "https://FRESH.gr7.us-east-1.eks.amazonaws.com"
      certificate_authority = [{ data = "Y2E=" }]
      identity              = [{ oidc = [{ issuer = "https://oidc.eks.us-east-1.amazonaws.com/id/FRESH" }] }]
    }
  }
  mock_resource "aws_iam_openid_connect_provider" {
    defaults = { arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/FRESH" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mocked" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:us-east-1:123456789012:key/mocked" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::mocked" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:us-east-1:123456789012:mocked", url = "https://sqs.us-east-1.amazonaws.com/123456789012/mocked" }
  }
  mock_resource "aws_ecr_repository" {
    defaults = { arn = "arn:aws:ecr:us-east-1:123456789012:repository/mocked", repository_url = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mocked" }
  }
  mock_resource "aws_route53_zone" {
    defaults = { zone_id = "ZFRESH" }
  }
  mock_resource "aws_acm_certificate" {
    defaults = {
      arn = "arn:aws:acm:us-east-1:123456789012:certificate/mocked"
      domain_validation_options = [
        { domain_name = "api.search.example.com", resource_record_name = "_a.api", resource_record_type = "CNAME", resource_record_value = "_a.acm" },
        { domain_name = "dashboard.search.example.com", resource_record_name = "_a.dashboard", resource_record_type = "CNAME", resource_record_value = "_b.acm" },
      ]
    }
  }
}

mock_provider "helm" {}

mock_provider "tls" {
  override_during = plan

  mock_data "tls_certificate" {
    defaults = { certificates = [{ sha1_fingerprint = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280" }] }
  }
}

run "fresh_cluster_defaults" {
  command = plan

  assert {
    condition     = length(aws_vpc.this) == 1 && length(aws_eks_cluster.this) == 1 && length(aws_subnet.public) == 2
    error_message = "the default is a fresh VPC and EKS cluster over two zones"
  }
  assert {
    condition     = length(aws_nat_gateway.this) == 0 && length(aws_subnet.private) == 0 && aws_subnet.public[0].map_public_ip_on_launch
    error_message = "public worker subnets, no NAT Gateway by default"
  }
  assert {
    condition     = aws_eks_node_group.system[0].instance_types == tolist(["i4i.large"]) && aws_eks_node_group.system[0].labels["layer.hev.dev/node-role"] == "system"
    error_message = "one always-on i4i.large system node group labelled node-role=system"
  }
  assert {
    condition     = length(aws_eks_node_group.system[0].taint) == 0
    error_message = "the system nodes are not tainted by default"
  }
  assert {
    condition     = length(helm_release.karpenter) == 1 && length(helm_release.lb_controller) == 1 && length(aws_efs_file_system.this) == 1
    error_message = "Karpenter, the Load Balancer Controller and EFS come with a fresh cluster"
  }
  assert {
    condition     = length(aws_route53_zone.this) == 0 && length(aws_acm_certificate.ingress) == 0
    error_message = "Route53/ACM are opt-in"
  }
  assert {
    condition     = length(aws_ecr_repository.this) == 4 && aws_ecr_repository.this["gateway"].name == "layer/gateway"
    error_message = "four ECR repositories"
  }
  assert {
    condition     = output.s3_bucket == "layer-123456789012-us-east-1" && output.gateway_image == "123456789012.dkr.ecr.us-east-1.amazonaws.com/mocked:0.1.0"
    error_message = "bucket and image outputs"
  }
  assert {
    condition     = output.oidc_provider_arn == "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/FRESH"
    error_message = "the roles trust the fresh cluster's OIDC provider"
  }
  assert {
    condition     = local.gateway_subjects == ["system:serviceaccount:layer:layer", "system:serviceaccount:layer:layer-metrics"]
    error_message = "the gateway role is bound to the chart's gateway and metrics service accounts"
  }
  assert {
    condition = alltrue([
      for role, subjects in {
        gateway   = ["system:serviceaccount:layer:layer", "system:serviceaccount:layer:layer-metrics"]
        operator  = ["system:serviceaccount:layer:layer-operator"]
        dashboard = ["system:serviceaccount:layer:layer-dashboard"]
        } : one([
          for c in data.aws_iam_policy_document.irsa_trust[role].statement[0].condition :
          c.values if c.variable == "oidc.eks.us-east-1.amazonaws.com/id/FRESH:sub" && c.test == "StringEquals"
      ]) == tolist(subjects)
    ])
    error_message = "each IRSA trust policy names exactly its service accounts, for the fresh cluster's issuer"
  }
  assert {
    condition = alltrue([
      one(aws_s3_bucket_server_side_encryption_configuration.data.rule).apply_server_side_encryption_by_default[0].sse_algorithm == "aws:kms",
      aws_s3_bucket_public_access_block.data.block_public_acls, aws_s3_bucket_public_access_block.data.block_public_policy,
      aws_s3_bucket_public_access_block.data.ignore_public_acls, aws_s3_bucket_public_access_block.data.restrict_public_buckets,
      one(aws_s3_bucket_versioning.data.versioning_configuration).status == "Enabled",
    ])
    error_message = "the bucket is private, SSE-KMS encrypted and versioned"
  }
  assert {
    condition = yamldecode(output.helm_values_yaml) == {
      s3              = { bucket = "layer-123456789012-us-east-1", region = "us-east-1" }
      serviceAccount  = { roleArn = "arn:aws:iam::123456789012:role/mocked" }
      gateway         = { image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mocked:0.1.0", nodeRole = "system", instanceTypes = ["i4i.large"], tolerations = [] }
      operator        = { image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mocked:0.1.0", serviceAccount = { roleArn = "arn:aws:iam::123456789012:role/mocked" } }
      dashboard       = { image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mocked:0.1.0", serviceAccount = { roleArn = "arn:aws:iam::123456789012:role/mocked" } }
      documentCache   = { nodeRole = "system" }
      workerKarpenter = { enabled = true, clusterName = "layer", instanceProfile = "layer-karpenter-node" }
      ingress         = {}
    }
    error_message = "the helm values of a fresh cluster"
  }
}

run "existing_cluster" {
  command = plan

  variables {
    create_cluster        = false
    existing_cluster_name = "prod"
  }

  assert {
    condition = alltrue([
      length(aws_vpc.this) == 0, length(aws_eks_cluster.this) == 0, length(aws_eks_node_group.system) == 0,
      length(helm_release.karpenter) == 0, length(helm_release.lb_controller) == 0, length(aws_efs_file_system.this) == 0,
      length(aws_iam_openid_connect_provider.eks) == 0,
    ])
    error_message = "an existing cluster gets no cluster resources"
  }
  assert {
    condition     = length(aws_iam_role.gateway.name) > 0 && length(aws_ecr_repository.this) == 4 && aws_s3_bucket_public_access_block.data.block_public_policy
    error_message = "the bucket, roles and repositories are still created"
  }
  assert {
    condition     = output.oidc_provider_arn == "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXISTING"
    error_message = "the roles trust the existing cluster's OIDC provider"
  }
  assert {
    condition     = output.cluster_name == "prod" && output.gateway_node_role == null && output.worker_karpenter_instance_profile == null
    error_message = "no scheduling or Karpenter values for an existing cluster"
  }
}

run "existing_cluster_needs_its_name" {
  command = plan

  variables {
    create_cluster = false
  }

  expect_failures = [data.aws_eks_cluster.existing]
}

run "nat_taint_and_public_dns" {
  command = plan

  variables {
    enable_nat_gateway = true
    system_node_taint  = true
    manage_public_dns  = true
    create_dns_zone    = true
    dns_zone_name      = "search.example.com"
  }

  assert {
    condition     = length(aws_nat_gateway.this) == 1 && length(aws_subnet.private) == 2 && !aws_subnet.public[0].map_public_ip_on_launch
    error_message = "enable_nat_gateway puts the nodes in private subnets behind one NAT Gateway"
  }
  assert {
    condition     = one(aws_eks_node_group.system[0].taint).key == "layer.hev.dev/node-role" && one(aws_eks_node_group.system[0].taint).effect == "NO_SCHEDULE"
    error_message = "system_node_taint taints the system nodes"
  }
  assert {
    condition     = yamldecode(output.helm_values_yaml).gateway.tolerations == [{ key = "layer.hev.dev/node-role", operator = "Equal", value = "system", effect = "NoSchedule" }]
    error_message = "the gateway tolerates the taint"
  }
  assert {
    condition     = aws_acm_certificate.ingress[0].domain_name == "api.search.example.com" && length(aws_route53_record.validation) == 2
    error_message = "one certificate for both hosts, validated through the zone"
  }
  assert {
    condition     = output.ingress_host == "api.search.example.com" && output.dashboard_ingress_host == "dashboard.search.example.com"
    error_message = "the ingress hosts feed ingress.host and dashboard.ingress.host"
  }
}
