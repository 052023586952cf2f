//! How a tenant segment is sized: [`TenantConfig`].

/// Largest value by default, as the store's configuration's default.
pub const DEFAULT_MAX_VALUE: u32 = 1 << 20;

/// The most live variables a segment holds: its table has twice as many slots, 64 bytes each
/// (2 GiB of table at this bound).
pub const MAX_VARIABLES: u32 = 1 << 24;

/// How a tenant segment is sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantConfig {
    /// Memory quota: value bytes and names (in 8-byte granules) plus 64 bytes per live
    /// variable. The segment's value area is this plus room for one more value, so replacing
    /// a value can allocate the new one before freeing the old.
    pub quota_bytes: u64,
    /// Live variables at most, `1 ..=` [`MAX_VARIABLES`]. The table holds twice as many slots
    /// (rounded up to a power of two), so probes stay short.
    pub max_variables: u32,
    /// Largest value in bytes; a larger one is a `BadRequest`. At most `quota_bytes`.
    pub max_value_len: u32,
    /// Change-ring slots (a power of two): how far a watcher may fall behind before it gets
    /// `Lagged`.
    pub ring_slots: u32,
    /// The segment's epoch, bumped each time the tenant moves to a fresh segment.
    pub epoch: u64,
}

impl TenantConfig {
    /// A quota of `quota_bytes` and `max_variables`; values up to 1 MiB (or the quota, if
    /// smaller); a ring of four changes per variable, between 64 and 65 536 slots; epoch 0.
    #[must_use]
    pub fn new(quota_bytes: u64, max_variables: u32) -> Self {
        let max_value = u32::try_from(quota_bytes.min(u64::from(DEFAULT_MAX_VALUE)))
            .unwrap_or(DEFAULT_MAX_VALUE);
        Self {
            quota_bytes,
            max_variables,
            max_value_len: max_value,
            ring_slots: max_variables
                .saturating_mul(4)
                .clamp(64, 1 << 16)
                .next_power_of_two(),
            epoch: 0,
        }
    }

    /// Sets the largest value.
    #[must_use]
    pub fn max_value_len(mut self, len: u32) -> Self {
        self.max_value_len = len;
        self
    }

    /// Sets the number of change-ring slots (a power of two).
    #[must_use]
    pub fn ring_slots(mut self, slots: u32) -> Self {
        self.ring_slots = slots;
        self
    }

    /// Sets the epoch.
    #[must_use]
    pub fn epoch(mut self, epoch: u64) -> Self {
        self.epoch = epoch;
        self
    }
}
