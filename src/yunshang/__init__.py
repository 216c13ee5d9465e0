"""yunshang: one shared, governed Kubernetes platform for every department."""
