"""Capacity: device capabilities, NAT type, scoring, relay selection, sharing limits (sans-IO).

Rail Gun's capacity-aware routing (paper/spec.md, section CAP): a device's
`DeviceCapabilities` (`types`), its score (`scoring`), the signed advertisement
other nodes fetch from the DHT (`advert`), who may host which role and in what
order (`selection`), and the limits on what it shares (`sharing`). The NAT
type comes from the classifier in `nat`.
"""

from railgun_ref.capacity.advert import (
    DEFAULT_ADVERT_TTL,
    MAX_ADVERT_TTL,
    Advertisement,
    Advertiser,
    CapabilityDirectory,
    PublishAdvertisement,
    capability_key,
    decode_capabilities,
    encode_capabilities,
    pick_advertisement,
    sign_advertisement,
    verify_advertisement,
)
from railgun_ref.capacity.nat import NatType
from railgun_ref.capacity.scoring import CapacityScore, score
from railgun_ref.capacity.selection import (
    Candidate,
    Ineligibility,
    Ranked,
    Ranking,
    Role,
    eligibility,
    is_eligible,
    rank_candidates,
    select_hosts,
)
from railgun_ref.capacity.sharing import (
    BandwidthRefused,
    CapacitySharing,
    CapacitySharingConfig,
    ConnectionsRefused,
    Granted,
    LimitKind,
    Refusal,
    SharingDisabled,
    TokenBucket,
)
from railgun_ref.capacity.types import (
    Availability,
    BatteryStatus,
    CapabilityError,
    DeviceCapabilities,
    DeviceClass,
)

__all__ = [
    "DEFAULT_ADVERT_TTL",
    "MAX_ADVERT_TTL",
    "Advertisement",
    "Advertiser",
    "Availability",
    "BandwidthRefused",
    "BatteryStatus",
    "Candidate",
    "CapabilityDirectory",
    "CapabilityError",
    "CapacityScore",
    "CapacitySharing",
    "CapacitySharingConfig",
    "ConnectionsRefused",
    "DeviceCapabilities",
    "DeviceClass",
    "Granted",
    "Ineligibility",
    "LimitKind",
    "NatType",
    "PublishAdvertisement",
    "Ranked",
    "Ranking",
    "Refusal",
    "Role",
    "SharingDisabled",
    "TokenBucket",
    "capability_key",
    "decode_capabilities",
    "eligibility",
    "encode_capabilities",
    "is_eligible",
    "pick_advertisement",
    "rank_candidates",
    "score",
    "select_hosts",
    "sign_advertisement",
    "verify_advertisement",
]
