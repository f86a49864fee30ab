"""Safe deploys: Temporal's Worker Deployments (worker versioning). docs/ARCHITECTURE.md, "Deploys"."""
