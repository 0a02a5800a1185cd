# Cluster add-ons of the fresh path: the AWS Load Balancer Controller (the chart's ingress uses
# className alb) and EFS with its CSI driver for shared persistent volumes.

locals {
  lb_controller = var.create_cluster && var.lb_controller_enabled
  efs           = var.create_cluster && var.efs_enabled
}

# One IRSA role per add-on, trusting exactly its kube-system service account.
data "aws_iam_policy_document" "addon_trust" {
  for_each = merge(
    local.lb_controller ? { lb-controller = "aws-load-balancer-controller" } : {},
    local.efs ? { efs-csi = "efs-csi-controller-sa" } : {},
  )
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer_host}:sub"
      values   = ["system:serviceaccount:kube-system:${each.value}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "addon" {
  for_each           = data.aws_iam_policy_document.addon_trust
  name               = "${var.name}-${each.key}"
  assume_role_policy = each.value.json
}

# --- AWS Load Balancer Controller ----------------------------------------------------------------

data "aws_iam_policy_document" "lb_controller" {
  #checkov:skip=CKV_AWS_111:The controller creates load balancers, target groups and security groups whose ARNs are not known in advance; deletes and modifications are limited to resources it tagged.
  #checkov:skip=CKV_AWS_356:Describe/Get actions of ELB, EC2, ACM, WAF and Shield have no resource-level permissions.
  count = local.lb_controller ? 1 : 0

  statement {
    sid       = "ServiceLinkedRole"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values   = ["elasticloadbalancing.amazonaws.com"]
    }
  }
  statement {
    sid = "Read"
    actions = [
      "ec2:DescribeAccountAttributes", "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones",
      "ec2:DescribeInternetGateways", "ec2:DescribeVpcs", "ec2:DescribeVpcPeeringConnections",
      "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeInstances",
      "ec2:DescribeNetworkInterfaces", "ec2:DescribeTags", "ec2:GetCoipPoolUsage",
      "ec2:DescribeCoipPools", "ec2:GetSecurityGroupsForVpc", "ec2:DescribeIpamPools",
      "ec2:DescribeRouteTables",
      "elasticloadbalancing:Describe*",
      "acm:ListCertificates", "acm:DescribeCertificate",
      "iam:ListServerCertificates", "iam:GetServerCertificate",
      "cognito-idp:DescribeUserPoolClient",
      "waf-regional:GetWebACL", "waf-regional:GetWebACLForResource", "waf-regional:AssociateWebACL", "waf-regional:DisassociateWebACL",
      "wafv2:GetWebACL", "wafv2:GetWebACLForResource", "wafv2:AssociateWebACL", "wafv2:DisassociateWebACL",
      "shield:GetSubscriptionState", "shield:DescribeProtection", "shield:CreateProtection", "shield:DeleteProtection",
    ]
    resources = ["*"]
  }
  statement {
    sid       = "CreateSecurityGroups"
    actions   = ["ec2:CreateSecurityGroup", "ec2:CreateTags"]
    resources = ["*"]
  }
  statement {
    sid       = "ManageOwnSecurityGroups"
    actions   = ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup", "ec2:DeleteTags"]
    resources = ["*"]
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/elbv2.k8s.aws/cluster"
      values   = ["false"]
    }
  }
  statement {
    sid = "CreateLoadBalancers"
    actions = [
      "elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup",
      "elasticloadbalancing:CreateListener", "elasticloadbalancing:CreateRule",
      "elasticloadbalancing:AddTags",
    ]
    resources = ["*"]
  }
  statement {
    sid = "ManageOwnLoadBalancers"
    actions = [
      "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetIpAddressType",
      "elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:SetSubnets",
      "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:ModifyTargetGroup",
      "elasticloadbalancing:ModifyTargetGroupAttributes", "elasticloadbalancing:DeleteTargetGroup",
      "elasticloadbalancing:ModifyListener", "elasticloadbalancing:DeleteListener",
      "elasticloadbalancing:ModifyRule", "elasticloadbalancing:DeleteRule",
      "elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets",
      "elasticloadbalancing:AddListenerCertificates", "elasticloadbalancing:RemoveListenerCertificates",
      "elasticloadbalancing:SetWebAcl", "elasticloadbalancing:RemoveTags",
      "elasticloadbalancing:ModifyListenerAttributes",
    ]
    resources = ["*"]
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/elbv2.k8s.aws/cluster"
      values   = ["false"]
    }
  }
}

resource "aws_iam_role_policy" "lb_controller" {
  count  = local.lb_controller ? 1 : 0
  name   = "aws-load-balancer-controller"
  role   = aws_iam_role.addon["lb-controller"].id
  policy = data.aws_iam_policy_document.lb_controller[0].json
}

resource "helm_release" "lb_controller" {
  count      = local.lb_controller ? 1 : 0
  name       = "aws-load-balancer-controller"
  namespace  = "kube-system"
  repository = "https://aws.github.io/eks-charts"
  chart      = "aws-load-balancer-controller"
  version    = var.lb_controller_version

  values = [yamlencode({
    clusterName = local.cluster_name
    region      = var.region
    vpcId       = aws_vpc.this[0].id
    serviceAccount = {
      name        = "aws-load-balancer-controller"
      annotations = { "eks.amazonaws.com/role-arn" = aws_iam_role.addon["lb-controller"].arn }
    }
  })]

  depends_on = [aws_eks_node_group.system, aws_iam_role_policy.lb_controller]
}

# --- EFS ------------------------------------------------------------------------------------------

resource "aws_security_group" "efs" {
  count       = local.efs ? 1 : 0
  name        = "${var.name}-efs"
  description = "NFS from the ${var.name} VPC to its EFS mount targets"
  vpc_id      = aws_vpc.this[0].id

  ingress {
    description = "NFS from the VPC"
    from_port   = 2049
    to_port     = 2049
    protocol    = "tcp"
    cidr_blocks = [var.vpc_cidr]
  }
}

resource "aws_efs_file_system" "this" {
  count          = local.efs ? 1 : 0
  creation_token = "${var.name}-shared"
  encrypted      = true
  kms_key_id     = aws_kms_key.data.arn
  tags           = { Name = "${var.name}-shared" }
}

resource "aws_efs_mount_target" "this" {
  count           = local.efs ? length(local.node_subnet_ids) : 0
  file_system_id  = aws_efs_file_system.this[0].id
  subnet_id       = local.node_subnet_ids[count.index]
  security_groups = [aws_security_group.efs[0].id]
}

resource "aws_iam_role_policy_attachment" "efs_csi" {
  count      = local.efs ? 1 : 0
  role       = aws_iam_role.addon["efs-csi"].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEFSCSIDriverPolicy"
}

resource "aws_eks_addon" "efs_csi" {
  count                    = local.efs ? 1 : 0
  cluster_name             = aws_eks_cluster.this[0].name
  addon_name               = "aws-efs-csi-driver"
  service_account_role_arn = aws_iam_role.addon["efs-csi"].arn

  depends_on = [aws_eks_node_group.system]
}
