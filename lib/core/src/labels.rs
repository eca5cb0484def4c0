//! Metric labels that come from device data, bounded before they become a Prometheus label or a
//! CloudWatch dimension: every distinct value is a time series (and a CloudWatch metric billed by
//! the month), and a device may send any string as its data type.

/// The data types the spec and the validation rules name; others are counted as `other`.
pub const KNOWN_DATA_TYPES: [&str; 8] = [
    "heartRate",
    "restingHeartRate",
    "walkingHeartRateAverage",
    "steps",
    "stepCount",
    "bloodPressure",
    "bloodPressureSystolic",
    "bloodPressureDiastolic",
];

/// The `data_type` label of a sample's data type: itself when known, else `other`.
pub fn metric_data_type(data_type: &str) -> &'static str {
    KNOWN_DATA_TYPES.iter().find(|known| **known == data_type).copied().unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_data_types_share_one_label() {
        assert_eq!(metric_data_type("heartRate"), "heartRate");
        assert_eq!(metric_data_type("bloodPressureSystolic"), "bloodPressureSystolic");
        assert_eq!(metric_data_type("user-1234-custom"), "other");
        assert_eq!(metric_data_type("HEARTRATE"), "other");
        assert_eq!(metric_data_type(""), "other");
    }
}
