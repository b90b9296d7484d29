"""The record path of one trial, one stage per module.

`world` captures the world a trial runs in and detects what changed since the previous trial;
`plan` turns a `compute()` call into a `TrialPlan`; `finish` persists a finished trial. See
docs/architecture.md for the whole path.
"""
