# Shared lookups and the names every other file uses.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# create_cluster=false: the cluster the roles are bound to.
data "aws_eks_cluster" "existing" {
  count = var.create_cluster ? 0 : 1
  name  = var.existing_cluster_name

  lifecycle {
    precondition {
      condition     = var.existing_cluster_name != ""
      error_message = "create_cluster=false needs existing_cluster_name (the EKS cluster the IRSA roles trust)."
    }
  }
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  cluster_name = var.create_cluster ? var.name : var.existing_cluster_name

  cluster_endpoint = var.create_cluster ? try(aws_eks_cluster.this[0].endpoint, "") : try(data.aws_eks_cluster.existing[0].endpoint, "")
  cluster_ca_data  = var.create_cluster ? try(aws_eks_cluster.this[0].certificate_authority[0].data, "") : try(data.aws_eks_cluster.existing[0].certificate_authority[0].data, "")

  # The cluster's OIDC issuer (https://oidc.eks.<region>.amazonaws.com/id/<id>) and the IAM identity
  # provider for it: IRSA roles trust tokens it signs for one service account each.
  oidc_issuer       = var.create_cluster ? try(aws_eks_cluster.this[0].identity[0].oidc[0].issuer, "") : try(data.aws_eks_cluster.existing[0].identity[0].oidc[0].issuer, "")
  oidc_issuer_host  = trimprefix(local.oidc_issuer, "https://")
  oidc_provider_arn = var.create_cluster ? try(aws_iam_openid_connect_provider.eks[0].arn, "") : "arn:${local.partition}:iam::${local.account_id}:oidc-provider/${local.oidc_issuer_host}"

  node_role_label = "layer.hev.dev/node-role"
}
