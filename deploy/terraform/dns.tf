# Opt-in DNS and TLS (manage_public_dns=true): a public Route53 zone (created or adopted), one ACM
# certificate for the gateway and dashboard hosts validated through that zone, and, once the Helm
# install has created the shared ALB (ingress_alb_dns_name), alias records for both hosts. The ALB
# controller finds the certificate by host name. The hosts are the chart's ingress.host and
# dashboard.ingress.host.

locals {
  dns            = var.manage_public_dns
  gateway_host   = var.gateway_host != "" ? var.gateway_host : (var.dns_zone_name != "" ? "api.${var.dns_zone_name}" : "")
  dashboard_host = var.dashboard_host != "" ? var.dashboard_host : (var.dns_zone_name != "" ? "dashboard.${var.dns_zone_name}" : "")
  zone_id        = local.dns ? (var.create_dns_zone ? aws_route53_zone.this[0].zone_id : data.aws_route53_zone.existing[0].zone_id) : ""
  ingress_hosts  = local.dns ? { gateway = local.gateway_host, dashboard = local.dashboard_host } : {}
}

resource "aws_route53_zone" "this" {
  #checkov:skip=CKV2_AWS_38:DNSSEC signing needs a KMS key in us-east-1 and a DS record at the parent; left to the zone's owner.
  #checkov:skip=CKV2_AWS_39:Query logging is the zone owner's choice.
  count = local.dns && var.create_dns_zone ? 1 : 0
  name  = var.dns_zone_name

  lifecycle {
    precondition {
      condition     = var.dns_zone_name != ""
      error_message = "manage_public_dns=true needs dns_zone_name."
    }
  }
}

data "aws_route53_zone" "existing" {
  count        = local.dns && !var.create_dns_zone ? 1 : 0
  name         = var.dns_zone_name
  private_zone = false
}

resource "aws_acm_certificate" "ingress" {
  count                     = local.dns ? 1 : 0
  domain_name               = local.gateway_host
  subject_alternative_names = [local.dashboard_host]
  validation_method         = "DNS"

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "validation" {
  for_each = local.dns ? {
    for o in aws_acm_certificate.ingress[0].domain_validation_options : o.domain_name => o
  } : {}

  zone_id         = local.zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  records         = [each.value.resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "ingress" {
  count                   = local.dns ? 1 : 0
  certificate_arn         = aws_acm_certificate.ingress[0].arn
  validation_record_fqdns = [for r in aws_route53_record.validation : r.fqdn]
}

resource "aws_route53_record" "ingress" {
  #checkov:skip=CKV2_AWS_23:The alias target is the ALB the chart's ingress creates (outside Terraform), given as ingress_alb_dns_name.
  for_each = var.ingress_alb_dns_name != "" ? local.ingress_hosts : {}

  zone_id = local.zone_id
  name    = each.value
  type    = "A"

  alias {
    name                   = var.ingress_alb_dns_name
    zone_id                = var.ingress_alb_zone_id
    evaluate_target_health = true
  }
}
