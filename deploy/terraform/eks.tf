# The fresh EKS cluster (create_cluster=true): control plane with envelope-encrypted Secrets and
# audit logs, the IRSA identity provider, and the always-on `system` node group on i4i.large whose
# local NVMe holds the gateway's cache tier, its queue and metrics data and the document cache.

resource "aws_iam_role" "cluster" {
  count = var.create_cluster ? 1 : 0
  name  = "${var.name}-eks-cluster"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = ["sts:AssumeRole", "sts:TagSession"]
      Principal = { Service = "eks.amazonaws.com" }
    }]
  })
}

resource "aws_iam_role_policy_attachment" "cluster" {
  count      = var.create_cluster ? 1 : 0
  role       = aws_iam_role.cluster[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonEKSClusterPolicy"
}

resource "aws_security_group" "cluster" {
  count       = var.create_cluster ? 1 : 0
  name        = "${var.name}-eks-cluster"
  description = "Extra rules of the ${var.name} EKS control plane"
  vpc_id      = aws_vpc.this[0].id
  tags        = merge({ Name = "${var.name}-eks-cluster" }, local.discovery_tags)
  # No rules: the control plane talks to the nodes through the cluster security group EKS manages.
}

resource "aws_cloudwatch_log_group" "cluster" {
  #checkov:skip=CKV_AWS_158:Control-plane logs use the service's encryption; a KMS key policy for CloudWatch Logs is left to the customer.
  #checkov:skip=CKV_AWS_338:A year of control-plane logs is a cost the docs do not ask for; 90 days covers incident review.
  count             = var.create_cluster ? 1 : 0
  name              = "/aws/eks/${var.name}/cluster"
  retention_in_days = 90
}

resource "aws_eks_cluster" "this" {
  #checkov:skip=CKV_AWS_39:The public endpoint is how the installer runs Helm; restrict it with cluster_endpoint_public_access_cidrs.
  #checkov:skip=CKV_AWS_38:The allowed CIDRs are a variable (cluster_endpoint_public_access_cidrs); its default keeps first installs reachable.
  count    = var.create_cluster ? 1 : 0
  name     = local.cluster_name
  version  = var.kubernetes_version
  role_arn = aws_iam_role.cluster[0].arn

  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  vpc_config {
    subnet_ids              = concat(aws_subnet.public[*].id, aws_subnet.private[*].id)
    security_group_ids      = [aws_security_group.cluster[0].id]
    endpoint_private_access = true
    endpoint_public_access  = true
    public_access_cidrs     = var.cluster_endpoint_public_access_cidrs
  }

  access_config {
    authentication_mode                         = "API_AND_CONFIG_MAP"
    bootstrap_cluster_creator_admin_permissions = true
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = aws_kms_key.data.arn
    }
  }

  depends_on = [aws_iam_role_policy_attachment.cluster, aws_cloudwatch_log_group.cluster]
}

data "tls_certificate" "oidc" {
  count = var.create_cluster ? 1 : 0
  url   = aws_eks_cluster.this[0].identity[0].oidc[0].issuer
}

resource "aws_iam_openid_connect_provider" "eks" {
  count           = var.create_cluster ? 1 : 0
  url             = aws_eks_cluster.this[0].identity[0].oidc[0].issuer
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = [data.tls_certificate.oidc[0].certificates[0].sha1_fingerprint]
}

# --- Nodes ----------------------------------------------------------------------------------------

# The system node group's role (Karpenter's nodes have their own: karpenter.tf).
resource "aws_iam_role" "node" {
  count = var.create_cluster ? 1 : 0
  name  = "${var.name}-node"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "ec2.amazonaws.com" }
    }]
  })
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = var.create_cluster ? toset([
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonSSMManagedInstanceCore",
  ]) : toset([])
  role       = aws_iam_role.node[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

resource "aws_launch_template" "system" {
  count       = var.create_cluster ? 1 : 0
  name_prefix = "${var.name}-system-"

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.system_node_root_volume_size
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1 # pods use IRSA, never the node's instance role
  }

  # AL2023's nodeadm builds a RAID0 of the instance-store NVMe drives and mounts it at
  # /mnt/k8s-disks/0 (containerd and the kubelet move onto it). The chart's hostPaths live under
  # /mnt/k8s-disks/0 (document cache, local-path volumes) and /mnt/nvme (gateway data, queue,
  # metrics): /mnt/nvme is a link to the same array.
  user_data = base64encode(<<-EOT
    MIME-Version: 1.0
    Content-Type: multipart/mixed; boundary="LAYER"

    --LAYER
    Content-Type: application/node.eks.aws

    apiVersion: node.eks.aws/v1alpha1
    kind: NodeConfig
    spec:
      instance:
        localStorage:
          strategy: RAID0

    --LAYER
    Content-Type: text/x-shellscript; charset="us-ascii"

    #!/bin/bash
    set -euo pipefail
    mkdir -p /mnt/k8s-disks/0
    ln -sfn /mnt/k8s-disks/0 /mnt/nvme

    --LAYER--
  EOT
  )

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.name}-system" }
  }
}

resource "aws_eks_node_group" "system" {
  count           = var.create_cluster ? 1 : 0
  cluster_name    = aws_eks_cluster.this[0].name
  node_group_name = "system"
  node_role_arn   = aws_iam_role.node[0].arn
  subnet_ids      = local.node_subnet_ids
  instance_types  = [var.system_node_instance_type]
  ami_type        = "AL2023_x86_64_STANDARD"
  capacity_type   = "ON_DEMAND"

  scaling_config {
    desired_size = var.system_node_count
    min_size     = var.system_node_count
    max_size     = var.system_node_count
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.system[0].id
    version = aws_launch_template.system[0].latest_version
  }

  # The chart schedules the gateway on layer.hev.dev/node-role=<gateway.nodeRole> and the document
  # cache on <documentCache.nodeRole>; the helm values output sets both to system_node_role.
  labels = {
    "layer.hev.dev/node-role" = var.system_node_role
  }

  dynamic "taint" {
    for_each = var.system_node_taint ? [var.system_node_role] : []
    content {
      key    = "layer.hev.dev/node-role"
      value  = taint.value
      effect = "NO_SCHEDULE"
    }
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

resource "aws_eks_addon" "core" {
  for_each = var.create_cluster ? toset(["vpc-cni", "kube-proxy", "coredns", "eks-pod-identity-agent"]) : toset([])

  cluster_name                = aws_eks_cluster.this[0].name
  addon_name                  = each.value
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  # CoreDNS needs a node to schedule on.
  depends_on = [aws_eks_node_group.system]
}
