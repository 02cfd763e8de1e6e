"""The only writers of zones and pools, by concern: `selectors` (what callers may see and choose),
`writes` (zone and recordset changes), `pools` (pool administration), `pipeline` (what the
provisioning pipeline reads and records), `sweeps` (recovery, sync, target sync, purge) and
`catalog` (the catalog serial). Callers import the module they use."""
