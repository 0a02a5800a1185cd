# Layer's AWS footprint (docs/src/install.md, "Terraform"): the resources the gateway, operator and
# dashboard need, and optionally a fresh EKS cluster to run them in. Its outputs are named after the
# Helm values of deploy/helm/layer they feed; `helm_values_yaml` is a ready values file.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    # tests/test_aws_schema.py checks every aws_* block against 6.25.0's schema.
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0.0, < 7.0.0"
    }
    # Installs Karpenter and the AWS Load Balancer Controller into a fresh cluster (create_cluster).
    helm = {
      source  = "hashicorp/helm"
      version = ">= 2.12.0, < 3.0.0"
    }
    # Reads the EKS OIDC issuer's certificate for the IRSA identity provider (create_cluster).
    tls = {
      source  = "hashicorp/tls"
      version = ">= 4.0.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge({ "app.kubernetes.io/part-of" = "layer", "layer.hev.dev/install" = var.name }, var.tags)
  }
}

# Only used with create_cluster=true (the helm_release resources are counted out otherwise): the
# cluster it talks to is the one this configuration creates, authenticated with the AWS CLI.
provider "helm" {
  kubernetes {
    host                   = local.cluster_endpoint
    cluster_ca_certificate = local.cluster_ca_data == "" ? null : base64decode(local.cluster_ca_data)

    exec {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", local.cluster_name, "--region", var.region]
    }
  }
}
