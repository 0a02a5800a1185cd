# The chart's service accounts each IRSA role is bound to (templates/_helpers.tpl and the
# ServiceAccount templates). This file reads only variables, so the tests evaluate it offline and
# compare it with the service accounts the chart renders.

locals {
  # The chart's fullname (templates/_helpers.tpl "layer.fullname"): the release name when it
  # contains the chart name, else <release>-layer; the VictoriaMetrics backup runs as <fullname>-metrics
  # with the gateway's role.
  chart_fullname          = trimsuffix(substr(strcontains(var.helm_release_name, "layer") ? var.helm_release_name : "${var.helm_release_name}-layer", 0, 50), "-")
  metrics_service_account = "${local.chart_fullname}-metrics"

  # system:serviceaccount:<namespace>:<name> of each role's pods.
  gateway_subjects = [
    "system:serviceaccount:${var.kubernetes_namespace}:${var.gateway_service_account}",
    "system:serviceaccount:${var.kubernetes_namespace}:${local.metrics_service_account}",
  ]
  operator_subjects  = ["system:serviceaccount:${var.kubernetes_namespace}:${var.operator_service_account}"]
  dashboard_subjects = ["system:serviceaccount:${var.kubernetes_namespace}:${var.dashboard_service_account}"]
}
