# The Helm values this configuration feeds, keyed exactly as deploy/helm/layer/values.yaml. This
# file reads only variables and local.helm_inputs (outputs.tf, the resources' attributes), so the
# tests evaluate it offline with stand-in inputs and render the chart with the result.

locals {
  system_node_toleration = {
    key      = "layer.hev.dev/node-role"
    operator = "Equal"
    value    = var.system_node_role
    effect   = "NoSchedule"
  }

  helm_values = {
    s3 = {
      bucket = local.helm_inputs.bucket
      region = var.region
    }
    serviceAccount = {
      roleArn = local.helm_inputs.gateway_role_arn
    }
    gateway = merge(
      { for k, v in { image = local.helm_inputs.images.gateway } : k => v if v != "" },
      # Fresh cluster: the gateway goes to the i4i system node group (its label, its taint).
      { for k, v in {
        nodeRole      = var.system_node_role
        instanceTypes = [var.system_node_instance_type]
        tolerations   = var.system_node_taint ? [local.system_node_toleration] : []
      } : k => v if var.create_cluster },
    )
    operator = merge(
      { for k, v in { image = local.helm_inputs.images.operator } : k => v if v != "" },
      { serviceAccount = { roleArn = local.helm_inputs.operator_role_arn } },
    )
    dashboard = merge(
      { for k, v in { image = local.helm_inputs.images.dashboard } : k => v if v != "" },
      { serviceAccount = { roleArn = local.helm_inputs.dashboard_role_arn } },
      { for k, v in { ingress = { enabled = true, host = local.helm_inputs.dashboard_host } } : k => v if var.manage_public_dns },
    )
    # The document cache shares the system node (install.md's baseline profile).
    documentCache = { for k, v in {
      nodeRole = var.system_node_role
    } : k => v if var.create_cluster }
    # The chart's Karpenter NodePools/EC2NodeClasses for worker-cpu and worker-gpu.
    workerKarpenter = { for k, v in {
      enabled         = true
      clusterName     = local.helm_inputs.cluster_name
      instanceProfile = local.helm_inputs.karpenter_instance_profile
    } : k => v if var.create_cluster && var.karpenter_enabled }
    ingress = { for k, v in {
      enabled = true
      host    = local.helm_inputs.gateway_host
    } : k => v if var.manage_public_dns }
  }
}
