use mttx_etl::{MetricsVersion, Reason, fold};
use mttx_fixtures::golden;

use crate::inputs;

fn ids(text: &str) -> Vec<i64> {
    serde_json_ids(text)
}

fn serde_json_ids(text: &str) -> Vec<i64> {
    text.trim_matches(['[', ']'])
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect()
}

/// Every incident of the golden set folds to exactly the facts worked out by hand.
#[test]
fn golden_incidents_fold_to_the_hand_worked_facts() {
    let data = golden::dataset().unwrap();
    let (ctx, incidents, entries) = inputs(&data);
    let expected = golden::expected_facts().unwrap();
    assert_eq!(expected.len(), incidents.len());
    for want in &expected {
        let row = incidents.iter().find(|i| i.id == want.incident_id).unwrap();
        let log = &entries[&row.id];
        let v1 = fold(MetricsVersion::V1, row, log, &ctx).fact;
        let v2 = fold(MetricsVersion::V2, row, log, &ctx).fact;
        let id = want.incident_id;
        assert_eq!(v1.account_id, want.account_id, "incident {id}");
        assert_eq!(v1.incident_number, want.incident_number, "incident {id}");
        assert_eq!(v1.service_id, want.service_id, "incident {id}");
        assert_eq!(
            (v1.escalation_policy_id, v1.team_id),
            (want.escalation_policy_id_v1, want.team_id_v1),
            "v1 attribution of {id}"
        );
        assert_eq!(
            (v2.escalation_policy_id, v2.team_id),
            (want.escalation_policy_id_v2, want.team_id_v2),
            "v2 attribution of {id}"
        );
        assert_eq!((v1.metrics_version, v2.metrics_version), (1, 2));
        assert_eq!(v1.urgency, want.urgency, "incident {id}");
        assert_eq!(v1.priority, want.priority, "incident {id}");
        assert_eq!(v1.major, want.major, "major of {id}");
        assert_eq!(v1.created_at, want.created_at, "created_at of {id}");
        assert_eq!(
            v1.created_at_from_incident_row, want.created_at_from_incident_row,
            "incident {id}"
        );
        assert_eq!(
            v1.seconds_to_first_ack, want.seconds_to_first_ack,
            "time to first ack of {id}"
        );
        assert_eq!(
            v1.seconds_to_resolve, want.seconds_to_resolve,
            "time to resolve of {id}"
        );
        assert_eq!(
            v1.auto_resolved, want.auto_resolved,
            "auto_resolved of {id}"
        );
        assert_eq!(
            (
                v1.escalation_count,
                v1.timeout_escalations,
                v1.manual_escalations
            ),
            (
                want.escalation_count,
                want.timeout_escalations,
                want.manual_escalations
            ),
            "escalations of {id}"
        );
        assert_eq!(
            v1.reassignment_count, want.reassignment_count,
            "reassignments of {id}"
        );
        assert_eq!(v1.ack_count, want.ack_count, "acks of {id}");
        assert_eq!(
            v1.notification_count, want.notification_count,
            "notifications of {id}"
        );
        assert_eq!(
            (
                v1.interruptions,
                v1.interruptions_business,
                v1.interruptions_off_hours,
                v1.interruptions_sleep
            ),
            (
                want.interruptions,
                want.interruptions_business,
                want.interruptions_off_hours,
                want.interruptions_sleep
            ),
            "interruptions (all, business, off-hours, sleep) of {id}"
        );
        assert_eq!(
            v1.seconds_to_mobilize, want.seconds_to_mobilize,
            "mobilize of {id}"
        );
        assert_eq!(
            v1.acknowledged_user_ids,
            ids(&want.acknowledged_user_ids),
            "acknowledgers of {id}"
        );
        assert_eq!(
            v1.assigned_user_ids,
            ids(&want.assigned_user_ids),
            "assignees of {id}"
        );
        assert_eq!(
            v1.unknown_entry_count, want.unknown_entry_count,
            "unknown entries of {id}"
        );
        assert_eq!(v1.last_entry_id, want.last_entry_id, "last entry of {id}");
        assert_eq!(
            (v1.reopen_count, v1.final_resolved_at),
            (Some(want.reopen_count), want.final_resolved_at),
            "reopenings and final resolve of {id}"
        );
    }
}

/// The bad input of the golden set is quarantined where its README says, and nothing else.
#[test]
fn golden_bad_input_is_quarantined_with_its_reason() {
    let data = golden::dataset().unwrap();
    let (ctx, incidents, entries) = inputs(&data);
    let mut found: Vec<(i64, i64, &str)> = Vec::new();
    for row in &incidents {
        for issue in fold(MetricsVersion::V1, row, &entries[&row.id], &ctx).issues {
            found.push((issue.incident_id, issue.entry_id, issue.reason.as_str()));
        }
    }
    found.sort();
    let expected = vec![
        (7, 62, Reason::UnknownType.as_str()),
        (7, 63, Reason::Duplicate.as_str()),
        (8, 75, Reason::AckBeforeTrigger.as_str()),
        (9, 0, Reason::MissingTrigger.as_str()),
        (10, 74, Reason::NullField.as_str()),
        (10, 76, Reason::NullField.as_str()),
        (10, 78, Reason::NullField.as_str()),
        (10, 79, Reason::NullField.as_str()),
    ];
    assert_eq!(found, expected);
}
