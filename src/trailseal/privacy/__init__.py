"""Privacy before sealing: personal data and secrets never enter the hashed, immutable part.

Detectors find personal data and secrets in strings; a policy picks an action per kind and field;
`protect` applies it to an event, sending erasable values to the vault behind salted commitments.
"""

from trailseal.privacy.detectors import KINDS, NATIONAL_ID_KINDS, SECRET_KINDS, Finding, Scanner, scan
from trailseal.privacy.keyring import Keys
from trailseal.privacy.names import is_secret_key
from trailseal.privacy.policy import ACTIONS, DEFAULT_POLICY, Policy, PolicyError
from trailseal.privacy.protect import Protected, commitments_in, protect, reveal
from trailseal.privacy.tokens import commitment_of, pseudonym, search_token, verify_commitment
from trailseal.privacy.vault import Vault, VaultRow

__all__ = [
    "ACTIONS",
    "DEFAULT_POLICY",
    "KINDS",
    "NATIONAL_ID_KINDS",
    "SECRET_KINDS",
    "Finding",
    "Keys",
    "Policy",
    "PolicyError",
    "Protected",
    "Scanner",
    "Vault",
    "VaultRow",
    "commitment_of",
    "commitments_in",
    "is_secret_key",
    "protect",
    "pseudonym",
    "reveal",
    "scan",
    "search_token",
    "verify_commitment",
]
