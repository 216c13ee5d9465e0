"""The Pulumi side of yunshang: components that provision the shared platform."""
