"""Deploy adapters: how a deployment reaches an environment, chosen by the pipeline target."""
