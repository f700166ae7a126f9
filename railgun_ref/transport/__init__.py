"""The hybrid transport: modes, states, central-service health and failover (HT-x)."""
