# Karpenter in the fresh cluster (create_cluster && karpenter_enabled): the controller (IRSA role,
# spot-interruption queue, Helm release in kube-system) and the node side (an access entry and an
# instance profile for the node role). The NodePools and EC2NodeClasses themselves are the chart's
# (workerKarpenter.enabled, documentCache.karpenter.enabled): the helm values output turns
# workerKarpenter on with this cluster's name and instance profile.

locals {
  karpenter                 = var.create_cluster && var.karpenter_enabled
  karpenter_namespace       = "kube-system"
  karpenter_service_account = "karpenter"
}

# Karpenter's nodes get a role of their own: EKS already holds an access entry for the managed
# node group's role, and a second entry for the same role would be refused.
resource "aws_iam_role" "karpenter_node" {
  count = local.karpenter ? 1 : 0
  name  = "${var.name}-karpenter-node"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "ec2.amazonaws.com" }
    }]
  })
}

resource "aws_iam_role_policy_attachment" "karpenter_node" {
  for_each = local.karpenter ? toset([
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonSSMManagedInstanceCore",
  ]) : toset([])
  role       = aws_iam_role.karpenter_node[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

# The chart's EC2NodeClasses name this profile (workerKarpenter.instanceProfile).
resource "aws_iam_instance_profile" "karpenter_node" {
  count = local.karpenter ? 1 : 0
  name  = "${var.name}-karpenter-node"
  role  = aws_iam_role.karpenter_node[0].name
}

# Nodes Karpenter launches join the cluster with that role.
resource "aws_eks_access_entry" "karpenter_node" {
  count         = local.karpenter ? 1 : 0
  cluster_name  = aws_eks_cluster.this[0].name
  principal_arn = aws_iam_role.karpenter_node[0].arn
  type          = "EC2_LINUX"
}

resource "aws_sqs_queue" "karpenter_interruption" {
  count                     = local.karpenter ? 1 : 0
  name                      = "${var.name}-karpenter"
  message_retention_seconds = 300
  sqs_managed_sse_enabled   = true
}

data "aws_iam_policy_document" "karpenter_interruption_queue" {
  count = local.karpenter ? 1 : 0
  statement {
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.karpenter_interruption[0].arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com", "sqs.amazonaws.com"]
    }
  }
}

resource "aws_sqs_queue_policy" "karpenter_interruption" {
  count     = local.karpenter ? 1 : 0
  queue_url = aws_sqs_queue.karpenter_interruption[0].url
  policy    = data.aws_iam_policy_document.karpenter_interruption_queue[0].json
}

resource "aws_cloudwatch_event_rule" "karpenter" {
  for_each = local.karpenter ? {
    spot-interruption = { source = ["aws.ec2"], detail-type = ["EC2 Spot Instance Interruption Warning"] }
    rebalance         = { source = ["aws.ec2"], detail-type = ["EC2 Instance Rebalance Recommendation"] }
    state-change      = { source = ["aws.ec2"], detail-type = ["EC2 Instance State-change Notification"] }
    health            = { source = ["aws.health"], detail-type = ["AWS Health Event"] }
  } : {}

  name          = "${var.name}-karpenter-${each.key}"
  event_pattern = jsonencode(each.value)
}

resource "aws_cloudwatch_event_target" "karpenter" {
  for_each = aws_cloudwatch_event_rule.karpenter
  rule     = each.value.name
  arn      = aws_sqs_queue.karpenter_interruption[0].arn
}

data "aws_iam_policy_document" "karpenter_trust" {
  count = local.karpenter ? 1 : 0
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer_host}:sub"
      values   = ["system:serviceaccount:${local.karpenter_namespace}:${local.karpenter_service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "karpenter_controller" {
  count              = local.karpenter ? 1 : 0
  name               = "${var.name}-karpenter-controller"
  assume_role_policy = data.aws_iam_policy_document.karpenter_trust[0].json
}

data "aws_iam_policy_document" "karpenter_controller" {
  #checkov:skip=CKV_AWS_111:Karpenter creates fleets, launch templates and instances whose ids are not known in advance; launches are confined to this cluster's tag below.
  #checkov:skip=CKV_AWS_356:EC2 Describe*, pricing and instance-profile listing have no resource-level permissions.
  #checkov:skip=CKV_AWS_109:Instance-profile management is limited to profiles Karpenter tags for this cluster.
  count = local.karpenter ? 1 : 0

  statement {
    sid = "Describe"
    actions = [
      "ec2:DescribeAvailabilityZones",
      "ec2:DescribeImages",
      "ec2:DescribeInstances",
      "ec2:DescribeInstanceTypeOfferings",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeLaunchTemplates",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeSpotPriceHistory",
      "ec2:DescribeSubnets",
      "pricing:GetProducts",
      "iam:ListInstanceProfiles",
    ]
    resources = ["*"]
  }
  statement {
    sid       = "Launch"
    actions   = ["ec2:CreateFleet", "ec2:RunInstances", "ec2:CreateLaunchTemplate", "ec2:CreateTags"]
    resources = ["*"]
    condition {
      test     = "StringEqualsIfExists"
      variable = "aws:RequestTag/kubernetes.io/cluster/${local.cluster_name}"
      values   = ["owned"]
    }
  }
  statement {
    sid       = "Terminate"
    actions   = ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/kubernetes.io/cluster/${local.cluster_name}"
      values   = ["owned"]
    }
  }
  statement {
    sid       = "AmiParameters"
    actions   = ["ssm:GetParameter"]
    resources = ["arn:${local.partition}:ssm:${var.region}::parameter/aws/service/*"]
  }
  statement {
    sid       = "PassNodeRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.karpenter_node[0].arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ec2.amazonaws.com"]
    }
  }
  statement {
    sid = "InstanceProfiles"
    actions = [
      "iam:GetInstanceProfile",
      "iam:CreateInstanceProfile",
      "iam:TagInstanceProfile",
      "iam:AddRoleToInstanceProfile",
      "iam:RemoveRoleFromInstanceProfile",
      "iam:DeleteInstanceProfile",
    ]
    resources = ["arn:${local.partition}:iam::${local.account_id}:instance-profile/*"]
  }
  statement {
    sid       = "Interruptions"
    actions   = ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"]
    resources = [aws_sqs_queue.karpenter_interruption[0].arn]
  }
  statement {
    sid       = "Cluster"
    actions   = ["eks:DescribeCluster"]
    resources = [aws_eks_cluster.this[0].arn]
  }
}

resource "aws_iam_role_policy" "karpenter_controller" {
  count  = local.karpenter ? 1 : 0
  name   = "karpenter"
  role   = aws_iam_role.karpenter_controller[0].id
  policy = data.aws_iam_policy_document.karpenter_controller[0].json
}

resource "helm_release" "karpenter" {
  count      = local.karpenter ? 1 : 0
  name       = "karpenter"
  namespace  = local.karpenter_namespace
  repository = "oci://public.ecr.aws/karpenter"
  chart      = "karpenter"
  version    = var.karpenter_version

  values = [yamlencode({
    settings = {
      clusterName       = local.cluster_name
      interruptionQueue = aws_sqs_queue.karpenter_interruption[0].name
    }
    serviceAccount = {
      name        = local.karpenter_service_account
      annotations = { "eks.amazonaws.com/role-arn" = aws_iam_role.karpenter_controller[0].arn }
    }
    # The controller runs on the always-on system node (Karpenter must not run on nodes it manages).
    nodeSelector = { (local.node_role_label) = var.system_node_role }
    tolerations = var.system_node_taint ? [{
      key = local.node_role_label, operator = "Equal", value = var.system_node_role, effect = "NoSchedule"
    }] : []
  })]

  depends_on = [aws_eks_node_group.system, aws_iam_role_policy.karpenter_controller]
}

# Karpenter's EC2NodeClasses select security groups by the discovery tag: the cluster security
# group EKS created (the one the system nodes use) carries it.
resource "aws_ec2_tag" "cluster_sg_discovery" {
  count       = local.karpenter ? 1 : 0
  resource_id = aws_eks_cluster.this[0].vpc_config[0].cluster_security_group_id
  key         = "karpenter.sh/discovery"
  value       = local.cluster_name
}
