# Outputs. Those that feed a Helm value are named after it: the value's path with the dots and
# camelCase turned into snake_case (s3.bucket -> s3_bucket, serviceAccount.roleArn ->
# service_account_role_arn); their description starts with "Helm value <path>". helm_values_yaml
# is all of them as one values file:
#   terraform output -raw helm_values_yaml > values.terraform.yaml
#   helm upgrade --install layer deploy/helm/layer -n layer --create-namespace \
#     -f values.terraform.yaml -f values.customer.yaml

locals {
  helm_inputs = {
    bucket                     = aws_s3_bucket.data.bucket
    gateway_role_arn           = aws_iam_role.gateway.arn
    operator_role_arn          = aws_iam_role.operator.arn
    dashboard_role_arn         = aws_iam_role.dashboard.arn
    images                     = local.images
    cluster_name               = local.cluster_name
    karpenter_instance_profile = try(aws_iam_instance_profile.karpenter_node[0].name, "")
    gateway_host               = local.gateway_host
    dashboard_host             = local.dashboard_host
  }
}

output "s3_bucket" {
  description = "Helm value s3.bucket: the snapshot/history bucket."
  value       = local.helm_values.s3.bucket
}

output "s3_region" {
  description = "Helm value s3.region."
  value       = local.helm_values.s3.region
}

output "service_account_role_arn" {
  description = "Helm value serviceAccount.roleArn: the gateway's IRSA role."
  value       = local.helm_values.serviceAccount.roleArn
}

output "operator_service_account_role_arn" {
  description = "Helm value operator.serviceAccount.roleArn: the operator's IRSA role."
  value       = local.helm_values.operator.serviceAccount.roleArn
}

output "dashboard_service_account_role_arn" {
  description = "Helm value dashboard.serviceAccount.roleArn: the dashboard's cost-read IRSA role."
  value       = local.helm_values.dashboard.serviceAccount.roleArn
}

output "gateway_image" {
  description = "Helm value gateway.image: <gateway repository>:<image_tag> (null without create_ecr_repositories)."
  value       = try(local.helm_values.gateway.image, null)
}

output "operator_image" {
  description = "Helm value operator.image."
  value       = try(local.helm_values.operator.image, null)
}

output "dashboard_image" {
  description = "Helm value dashboard.image."
  value       = try(local.helm_values.dashboard.image, null)
}

output "gateway_node_role" {
  description = "Helm value gateway.nodeRole: the system node group's layer.hev.dev/node-role label (null for an existing cluster)."
  value       = try(local.helm_values.gateway.nodeRole, null)
}

output "document_cache_node_role" {
  description = "Helm value documentCache.nodeRole."
  value       = try(local.helm_values.documentCache.nodeRole, null)
}

output "worker_karpenter_cluster_name" {
  description = "Helm value workerKarpenter.clusterName (null without Karpenter)."
  value       = try(local.helm_values.workerKarpenter.clusterName, null)
}

output "worker_karpenter_instance_profile" {
  description = "Helm value workerKarpenter.instanceProfile: the Karpenter node instance profile."
  value       = try(local.helm_values.workerKarpenter.instanceProfile, null)
}

output "ingress_host" {
  description = "Helm value ingress.host (null without manage_public_dns)."
  value       = try(local.helm_values.ingress.host, null)
}

output "dashboard_ingress_host" {
  description = "Helm value dashboard.ingress.host (null without manage_public_dns)."
  value       = try(local.helm_values.dashboard.ingress.host, null)
}

output "helm_values" {
  description = "Every Helm value above, keyed as deploy/helm/layer/values.yaml."
  value       = local.helm_values
}

output "helm_values_yaml" {
  description = "helm_values as a values file (terraform output -raw helm_values_yaml)."
  value       = yamlencode(local.helm_values)
}

# --- Not Helm values ------------------------------------------------------------------------------

output "cluster_name" {
  description = "The EKS cluster (created, or existing_cluster_name)."
  value       = local.cluster_name
}

output "configure_kubectl" {
  description = "Command that points kubectl (and helm) at the cluster."
  value       = "aws eks update-kubeconfig --region ${var.region} --name ${local.cluster_name}"
}

output "oidc_provider_arn" {
  description = "The IAM OIDC provider the IRSA roles trust."
  value       = local.oidc_provider_arn
}

output "ecr_repository_urls" {
  description = "Repository URL per image (gateway, operator, dashboard, functions)."
  value       = { for k, r in aws_ecr_repository.this : k => r.repository_url }
}

output "efs_file_system_id" {
  description = "The shared EFS file system (null without efs_enabled)."
  value       = try(aws_efs_file_system.this[0].id, null)
}

output "acm_certificate_arn" {
  description = "The ingress certificate (null without manage_public_dns); the ALB controller finds it by host."
  value       = try(aws_acm_certificate_validation.ingress[0].certificate_arn, null)
}
