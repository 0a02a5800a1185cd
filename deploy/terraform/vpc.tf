# The fresh cluster's network (create_cluster=true): public subnets for every node by default (no
# NAT Gateway, so indexing traffic skips NAT's per-GB charge), private subnets behind one NAT
# Gateway when enable_nat_gateway=true, and an S3 gateway endpoint so bucket traffic stays in the VPC.

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:Only the first availability_zone_count zones (sorted by name) are used; a new zone sorts after the existing ones in a region.
  count = var.create_cluster ? 1 : 0
  state = "available"
}

locals {
  azs = var.create_cluster ? slice(data.aws_availability_zones.available[0].names, 0, var.availability_zone_count) : []
  # Subnets the nodes (system node group, Karpenter, EFS mount targets) use.
  node_subnet_ids = var.enable_nat_gateway ? aws_subnet.private[*].id : aws_subnet.public[*].id
  discovery_tags  = { "karpenter.sh/discovery" = local.cluster_name }
}

resource "aws_vpc" "this" {
  #checkov:skip=CKV2_AWS_11:VPC flow logs are a standing cost the docs leave to the customer.
  count                = var.create_cluster ? 1 : 0
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = { Name = var.name }
}

# The default security group of the VPC allows nothing.
resource "aws_default_security_group" "this" {
  count  = var.create_cluster ? 1 : 0
  vpc_id = aws_vpc.this[0].id
}

resource "aws_internet_gateway" "this" {
  count  = var.create_cluster ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = { Name = var.name }
}

resource "aws_subnet" "public" {
  #checkov:skip=CKV_AWS_130:Public worker subnets are the documented default (no NAT Gateway); nodes keep security groups that admit only the cluster.
  count                   = length(local.azs)
  vpc_id                  = aws_vpc.this[0].id
  availability_zone       = local.azs[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 4, count.index)
  map_public_ip_on_launch = !var.enable_nat_gateway
  tags = merge(
    {
      Name                                          = "${var.name}-public-${local.azs[count.index]}"
      "kubernetes.io/role/elb"                      = "1"
      "kubernetes.io/cluster/${local.cluster_name}" = "shared"
    },
    var.enable_nat_gateway ? {} : local.discovery_tags,
  )
}

resource "aws_subnet" "private" {
  count             = var.enable_nat_gateway ? length(local.azs) : 0
  vpc_id            = aws_vpc.this[0].id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 4, 8 + count.index)
  tags = merge(
    {
      Name                                          = "${var.name}-private-${local.azs[count.index]}"
      "kubernetes.io/role/internal-elb"             = "1"
      "kubernetes.io/cluster/${local.cluster_name}" = "shared"
    },
    local.discovery_tags,
  )
}

resource "aws_route_table" "public" {
  count  = var.create_cluster ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = { Name = "${var.name}-public" }
}

resource "aws_route" "public_internet" {
  count                  = var.create_cluster ? 1 : 0
  route_table_id         = aws_route_table.public[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this[0].id
}

resource "aws_route_table_association" "public" {
  count          = length(aws_subnet.public)
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public[0].id
}

resource "aws_eip" "nat" {
  count  = var.enable_nat_gateway ? 1 : 0
  domain = "vpc"
  tags   = { Name = "${var.name}-nat" }
}

resource "aws_nat_gateway" "this" {
  count         = var.enable_nat_gateway ? 1 : 0
  allocation_id = aws_eip.nat[0].id
  subnet_id     = aws_subnet.public[0].id
  tags          = { Name = var.name }

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route_table" "private" {
  count  = var.enable_nat_gateway ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = { Name = "${var.name}-private" }
}

resource "aws_route" "private_nat" {
  count                  = var.enable_nat_gateway ? 1 : 0
  route_table_id         = aws_route_table.private[0].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[0].id
}

resource "aws_route_table_association" "private" {
  count          = length(aws_subnet.private)
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[0].id
}

# Bucket traffic (snapshots, history) through the VPC's S3 gateway endpoint: no NAT, no charge.
resource "aws_vpc_endpoint" "s3" {
  count             = var.create_cluster ? 1 : 0
  vpc_id            = aws_vpc.this[0].id
  service_name      = "com.amazonaws.${var.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = concat(aws_route_table.public[*].id, aws_route_table.private[*].id)
  tags              = { Name = "${var.name}-s3" }
}
