"""Names every part shares, in a module that imports nothing (the CLI's fast paths use it)."""

GROUP = "platform.yunshang.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
TENANTS = "tenants"  # the plural of the Tenant CRD
DEFAULT_ANCHOR = "yunshang-system/yunshang-audit-anchor"  # namespace/name of a ConfigMap (stack config yunshang:auditAnchor)
