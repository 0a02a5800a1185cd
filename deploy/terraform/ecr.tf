# Image registry for the gateway, operator, dashboard and customer-built Function images. The
# gateway.image / operator.image / dashboard.image outputs point at <repository>:<image_tag>.

resource "aws_ecr_repository" "this" {
  for_each = var.create_ecr_repositories ? var.ecr_repositories : {}

  name                 = "${var.name}/${each.value}"
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.data.arn
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  for_each   = aws_ecr_repository.this
  repository = each.value.name

  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Drop untagged images after 14 days"
      selection = {
        tagStatus   = "untagged"
        countType   = "sinceImagePushed"
        countUnit   = "days"
        countNumber = 14
      }
      action = { type = "expire" }
    }]
  })
}

locals {
  # gateway / operator / dashboard image references; blank when the repositories are not created.
  images = {
    for k in ["gateway", "operator", "dashboard"] :
    k => try("${aws_ecr_repository.this[k].repository_url}:${var.image_tag}", "")
  }
}
