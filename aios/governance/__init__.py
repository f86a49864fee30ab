"""What decides whether an action may happen and keeps the account of it: the policy's grades,
versioned manifests, rollouts, concurrency slots, per-subject keys and the audit trail."""
