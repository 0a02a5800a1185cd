# Inputs. The defaults are the recommended fresh-cluster install (docs/src/install.md); every
# optional part has a toggle whose default is written in the docs' table.

variable "name" {
  description = "Prefix of every AWS resource name (bucket, roles, repositories, cluster)."
  type        = string
  default     = "layer"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name: 3-32 characters, lower-case letters, digits and '-', starting with a letter."
  }
}

variable "region" {
  description = "AWS region of every resource; also the chart's s3.region."
  type        = string
  default     = "us-east-1"
}

variable "tags" {
  description = "Extra tags on every AWS resource."
  type        = map(string)
  default     = {}
}

# --- The Helm release the roles are bound to (the chart's service account names) ----------------

variable "kubernetes_namespace" {
  description = "Namespace of the Helm release (helm install --namespace). The IRSA trust policies name it."
  type        = string
  default     = "layer"
}

variable "helm_release_name" {
  description = "Name of the Helm release. The VictoriaMetrics backup service account is named after it."
  type        = string
  default     = "layer"
}

variable "gateway_service_account" {
  description = "The chart's serviceAccount.name (the gateway's service account)."
  type        = string
  default     = "layer"
}

variable "operator_service_account" {
  description = "The chart's operator.serviceAccount.name."
  type        = string
  default     = "layer-operator"
}

variable "dashboard_service_account" {
  description = "The chart's dashboard.serviceAccount.name."
  type        = string
  default     = "layer-dashboard"
}

# --- S3 -------------------------------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the snapshot/history bucket. Blank: <name>-<account id>-<region>."
  type        = string
  default     = ""
}

variable "bucket_force_destroy" {
  description = "Let `terraform destroy` delete a non-empty bucket (snapshots and history are lost)."
  type        = bool
  default     = false
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted object version is kept before it expires."
  type        = number
  default     = 30
}

# --- ECR ------------------------------------------------------------------------------------------

variable "create_ecr_repositories" {
  description = "Create the ECR repositories for the gateway, operator, dashboard and function images."
  type        = bool
  default     = true
}

variable "ecr_repositories" {
  description = "Repository name (after <name>/) per image; the function repository holds customer-built Function images."
  type        = map(string)
  default = {
    gateway   = "gateway"
    operator  = "operator"
    dashboard = "dashboard"
    functions = "functions"
  }
}

variable "image_tag" {
  description = "Tag the image outputs (gateway.image, operator.image, dashboard.image) point at: the chart's appVersion. Tags are immutable in these repositories, so a release gets a new tag."
  type        = string
  default     = "0.1.0"
}

# --- Cluster: fresh (create_cluster=true) or existing ---------------------------------------------

variable "create_cluster" {
  description = "true: a fresh VPC, EKS cluster, i4i system node group, Karpenter, the AWS Load Balancer Controller and EFS. false: bind to existing_cluster_name."
  type        = bool
  default     = true
}

variable "existing_cluster_name" {
  description = "With create_cluster=false: the EKS cluster whose OIDC provider the IRSA roles trust."
  type        = string
  default     = ""
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version of a fresh cluster. The chart's Karpenter pools boot the EKS-optimized AMI of the version in their amiSsmParameter (1.35): keep the two equal (a kubelet must not be newer than its control plane)."
  type        = string
  default     = "1.35"
}

variable "vpc_cidr" {
  description = "CIDR of the fresh cluster's VPC."
  type        = string
  default     = "10.42.0.0/16"
}

variable "availability_zone_count" {
  description = "Availability zones the fresh VPC spans (EKS needs at least two)."
  type        = number
  default     = 2

  validation {
    condition     = var.availability_zone_count >= 2 && var.availability_zone_count <= 6
    error_message = "availability_zone_count must be between 2 and 6."
  }
}

variable "enable_nat_gateway" {
  description = "Put nodes in private subnets behind a NAT Gateway (a standing hourly and per-GB cost). Default: public worker subnets, no NAT."
  type        = bool
  default     = false
}

variable "cluster_endpoint_public_access_cidrs" {
  description = "CIDRs allowed to reach the fresh cluster's public API endpoint."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "system_node_instance_type" {
  description = "Instance type of the always-on system node group (local NVMe: the gateway's cache tier and the document cache)."
  type        = string
  default     = "i4i.large"
}

variable "system_node_count" {
  description = "Nodes in the system node group (one gateway pod per node)."
  type        = number
  default     = 1
}

variable "system_node_role" {
  description = "Value of the layer.hev.dev/node-role label on the system nodes; the helm values set gateway.nodeRole and documentCache.nodeRole to it."
  type        = string
  default     = "system"
}

variable "system_node_taint" {
  description = "Taint the system nodes layer.hev.dev/node-role=<system_node_role>:NoSchedule (the helm values then carry the matching gateway.tolerations). Off by default: cluster add-ons, the document cache and the chart's bundled PostgreSQL and VictoriaMetrics share the node and the chart gives only the gateway tolerations."
  type        = bool
  default     = false
}

variable "system_node_root_volume_size" {
  description = "Root EBS volume (GiB) of the system nodes; containerd and the kubelet use the NVMe RAID."
  type        = number
  default     = 40
}

variable "karpenter_enabled" {
  description = "Install Karpenter (scale-from-zero worker-cpu and worker-gpu capacity) into the fresh cluster."
  type        = bool
  default     = true
}

variable "karpenter_version" {
  description = "Karpenter Helm chart version (Kubernetes 1.35 needs 1.9 or later; the chart's NodePools/EC2NodeClasses are tested against this release's CRDs)."
  type        = string
  default     = "1.14.1"
}

variable "lb_controller_enabled" {
  description = "Install the AWS Load Balancer Controller (the chart's ingress uses className alb)."
  type        = bool
  default     = true
}

variable "lb_controller_version" {
  description = "aws-load-balancer-controller Helm chart version."
  type        = string
  default     = "1.13.0"
}

variable "efs_enabled" {
  description = "Create an EFS file system and the EFS CSI driver add-on for shared persistent volumes."
  type        = bool
  default     = true
}

# --- DNS and TLS (opt-in) -------------------------------------------------------------------------

variable "manage_public_dns" {
  description = "Create or adopt a Route53 zone and issue an ACM certificate for the gateway and dashboard hosts."
  type        = bool
  default     = false
}

variable "dns_zone_name" {
  description = "With manage_public_dns: the public zone (e.g. search.example.com)."
  type        = string
  default     = ""
}

variable "create_dns_zone" {
  description = "With manage_public_dns: create the zone (true) or look up an existing public zone of that name (false)."
  type        = bool
  default     = false
}

variable "gateway_host" {
  description = "Gateway hostname inside the zone (the chart's ingress.host). Blank: api.<dns_zone_name>."
  type        = string
  default     = ""
}

variable "dashboard_host" {
  description = "Dashboard hostname (the chart's dashboard.ingress.host). Blank: dashboard.<dns_zone_name>."
  type        = string
  default     = ""
}

variable "ingress_alb_dns_name" {
  description = "After the first Helm install: the shared ALB's DNS name, to point the hosts' alias records at it (blank: no records yet)."
  type        = string
  default     = ""
}

variable "ingress_alb_zone_id" {
  description = "Hosted zone id of that ALB (needed with ingress_alb_dns_name)."
  type        = string
  default     = ""
}
