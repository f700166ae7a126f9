"""Vector builders, one module per area; `railgun_ref.conformance.generate` runs them all."""
