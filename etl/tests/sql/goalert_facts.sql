-- The independent oracle for the GoAlert source: every alert's facts computed with SQL straight
-- over GoAlert's own tables (alerts, alert_logs, services, users), written from the README's
-- "From GoAlert" mapping, docs/design.md "Metric definitions, version 1" and the readings in
-- fixtures/golden/README.md — not from the Rust mapping. One row per alert. Integer ids of
-- UUIDs are the UUID's first 13 hex digits as a number. Interruption bands are read in UTC
-- (the default --goalert-time-zone). Worked by hand against fixtures/goalert/golden.md.
WITH RECURSIVE
-- The same row written twice counts once: keep the lowest id.
raw AS (
    SELECT * FROM (
        SELECT l.*, row_number() OVER (
            PARTITION BY l.alert_id, l.event, l."timestamp", l.sub_type, l.sub_user_id,
                         l.sub_integration_key_id, l.sub_hb_monitor_id, l.sub_channel_id,
                         l.sub_classifier, l.meta::text, l.message
            ORDER BY l.id) AS copy
        FROM alert_logs l
        JOIN alerts a ON a.id = l.alert_id
    ) x WHERE copy = 1
),
-- Old installations name the subject in the message only (GoAlert's legacy patterns).
legacy AS (
    SELECT r.*,
           CASE
               WHEN r.event = 'notification_sent' AND r.sub_type IS NULL
                   THEN substring(r.message FROM '^Notification sent to (.*) via (?:SMS|VOICE)$')
               WHEN r.event = 'response_received'
                   THEN substring(r.message FROM '^(?:Closed|Acknowledged) by (.*) via (?:SMS|VOICE)$')
               WHEN r.event = 'status_changed'
                   THEN substring(r.message FROM '^status changed to (?:active|closed) by (.*)$')
           END AS legacy_name,
           CASE
               WHEN r.event = 'notification_sent' AND r.sub_type IS NULL
                   THEN substring(r.message FROM '^Notification sent to .* via (SMS|VOICE)$')
           END AS legacy_via
    FROM raw r
),
mapped AS (
    SELECT l.id, l.alert_id, l."timestamp" AS at, l.event, l.meta,
           CASE
               WHEN l.event IN ('created', 'duplicate_suppressed') THEN 'trigger'
               WHEN l.event = 'acknowledged' THEN 'acknowledge'
               WHEN l.event = 'closed' THEN 'resolve'
               WHEN l.event = 'escalated' THEN 'escalated'
               WHEN l.event = 'notification_sent' AND l.sub_type = 'channel' THEN 'annotate'
               WHEN l.event = 'notification_sent' THEN 'notify'
               WHEN l.event = 'status_changed' AND l.message = 'Status updated from triggered to active'
                   THEN 'acknowledge'
               WHEN l.event = 'status_changed' AND l.message LIKE 'status changed to active%'
                   THEN 'acknowledge'
               WHEN l.event = 'status_changed' AND l.message LIKE 'status changed to closed%'
                   THEN 'resolve'
               WHEN l.event = 'status_changed' AND l.message = 'Status updated from active to triggered'
                   THEN 'escalated'
               WHEN l.event = 'response_received' AND l.message ~ '^Acknowledged by .* via (SMS|VOICE)$'
                   THEN 'acknowledge'
               WHEN l.event = 'response_received' AND l.message ~ '^Closed by .* via (SMS|VOICE)$'
                   THEN 'resolve'
               WHEN l.event = 'policy_updated' THEN 'policy_updated'
               WHEN l.event = 'escalation_request' THEN 'escalation_request'
               ELSE 'annotate'
           END AS kind,
           -- The acting user: the subject user, else the user the legacy message names.
           CASE
               WHEN l.sub_type = 'user' THEN l.sub_user_id
               WHEN l.legacy_name IS NOT NULL
                   THEN (SELECT u.id FROM users u WHERE u.name = l.legacy_name ORDER BY u.id LIMIT 1)
           END AS user_uuid,
           (coalesce(l.sub_type = 'user', false) OR l.legacy_name IS NOT NULL) AS by_user,
           CASE
               WHEN coalesce(l.legacy_via, l.sub_classifier) = 'SMS' THEN 'sms'
               WHEN coalesce(l.legacy_via, l.sub_classifier) IN ('Voice', 'VOICE') THEN 'phone'
               WHEN l.sub_classifier = 'Email' THEN 'email'
               WHEN l.sub_classifier = 'Slack' THEN 'slack'
               WHEN l.sub_classifier = 'Webhook' THEN 'webhook'
           END AS channel,
           CASE WHEN l.event = 'notification_sent' THEN l.meta->>'MessageID' END AS message_id
    FROM legacy l
),
-- A notification whose MessageID was already logged for the alert is the same message
-- logged again (a retry or a failure): only the first counts.
e AS (
    SELECT m.*, ('x' || substr(replace(m.user_uuid::text, '-', ''), 1, 13))::bit(52)::bigint AS user_id
    FROM (
        SELECT m.*, CASE WHEN m.kind = 'notify' AND m.message_id IS NOT NULL THEN
                   row_number() OVER (PARTITION BY m.alert_id, m.kind = 'notify', m.message_id
                                      ORDER BY m.at, m.id) END AS nth
        FROM mapped m
    ) m
    WHERE m.nth IS NULL OR m.nth = 1
),
trig AS (
    SELECT DISTINCT ON (alert_id) alert_id, at FROM e WHERE kind = 'trigger' ORDER BY alert_id, at, id
),
base AS (
    SELECT a.id, a.service_id, s.escalation_policy_id,
           coalesce(t.at, a.created_at) AS c_at, t.at IS NULL AS from_row
    FROM alerts a
    LEFT JOIN services s ON s.id = a.service_id
    LEFT JOIN trig t ON t.alert_id = a.id
),
acks AS (
    SELECT e.alert_id, e.user_id, greatest(e.at, b.c_at) AS at
    FROM e JOIN base b ON b.id = e.alert_id WHERE e.kind = 'acknowledge'
),
ack_agg AS (SELECT alert_id, count(*) AS n, min(at) AS first_at FROM acks GROUP BY 1),
ackers AS (
    SELECT alert_id, user_id, min(at) AS first_at FROM acks
    WHERE user_id IS NOT NULL GROUP BY 1, 2
),
acker_agg AS (
    SELECT alert_id, count(*) AS n, max(first_at) AS last_first,
           array_agg(user_id ORDER BY user_id) AS ids
    FROM ackers GROUP BY 1
),
res AS (
    SELECT DISTINCT ON (e.alert_id) e.alert_id, greatest(e.at, b.c_at) AS at, NOT e.by_user AS auto
    FROM e JOIN base b ON b.id = e.alert_id WHERE e.kind = 'resolve'
    ORDER BY e.alert_id, e.at, e.id
),
-- Escalated rows in order, with policy updates between them: the first escalated row and
-- the first after a policy update assign; any other escalates, by hand when its meta says
-- Forced or an escalation request came since the previous escalated row.
steps AS (
    SELECT e.*, count(*) FILTER (WHERE e.kind = 'escalation_request') OVER w AS requests
    FROM e WHERE e.kind IN ('escalated', 'policy_updated', 'escalation_request')
    WINDOW w AS (PARTITION BY e.alert_id ORDER BY e.at, e.id)
),
seq AS (
    SELECT s.*, lag(s.kind) OVER w AS prev_kind, lag(s.requests) OVER w AS prev_requests
    FROM steps s WHERE s.kind IN ('escalated', 'policy_updated')
    WINDOW w AS (PARTITION BY s.alert_id ORDER BY s.at, s.id)
),
moves AS (
    SELECT alert_id, id, at,
           prev_kind IS DISTINCT FROM 'escalated' AS is_assign,
           coalesce((meta->>'Forced')::boolean, false)
               OR requests > coalesce(prev_requests, 0) AS manual
    FROM seq WHERE kind = 'escalated'
),
esc AS (
    SELECT alert_id, count(DISTINCT (at, manual)) AS n,
           count(DISTINCT at) FILTER (WHERE NOT manual) AS by_timeout
    FROM moves WHERE NOT is_assign GROUP BY 1
),
asg AS (SELECT alert_id, count(DISTINCT at) AS n FROM moves WHERE is_assign GROUP BY 1),
-- Assignees: the users sent a notification after an assignment or escalation.
assignees AS (
    SELECT alert_id, array_agg(DISTINCT user_id ORDER BY user_id) AS ids
    FROM (
        SELECT e.alert_id, e.user_id, e.kind,
               bool_or(e.kind = 'escalated') OVER (
                   PARTITION BY e.alert_id ORDER BY e.at, e.id
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS after_move
        FROM e
    ) x
    WHERE kind = 'notify' AND user_id IS NOT NULL AND after_move
    GROUP BY 1
),
notif AS (SELECT alert_id, count(*) AS n FROM e WHERE kind = 'notify' GROUP BY 1),
last_entry AS (SELECT alert_id, max(id) AS id FROM alert_logs GROUP BY 1),
pages AS (
    SELECT alert_id, user_id, at,
           row_number() OVER (PARTITION BY alert_id, user_id ORDER BY at, id) AS n
    FROM e
    WHERE kind = 'notify' AND channel IN ('sms', 'phone') AND user_id IS NOT NULL
),
-- A page counts unless a counted page to the same user came less than 60 s before it.
counted AS (
    SELECT alert_id, user_id, n, at, at AS anchor, true AS counts
    FROM pages WHERE n = 1
    UNION ALL
    SELECT p.alert_id, p.user_id, p.n, p.at,
           CASE WHEN p.at - c.anchor >= interval '60 seconds' THEN p.at ELSE c.anchor END,
           p.at - c.anchor >= interval '60 seconds'
    FROM counted c
    JOIN pages p ON p.alert_id = c.alert_id AND p.user_id = c.user_id AND p.n = c.n + 1
),
bands AS (
    SELECT alert_id, count(*) AS n,
           count(*) FILTER (WHERE extract(isodow FROM local) <= 5
                              AND local::time >= '08:00' AND local::time < '18:00') AS business,
           count(*) FILTER (WHERE local::time >= '22:00' OR local::time < '08:00') AS sleep
    FROM (SELECT alert_id, at AT TIME ZONE 'UTC' AS local FROM counted WHERE counts) p
    GROUP BY 1
)
SELECT b.id AS incident_id,
       ('x' || substr(replace(b.service_id::text, '-', ''), 1, 13))::bit(52)::bigint AS service_id,
       ('x' || substr(replace(b.escalation_policy_id::text, '-', ''), 1, 13))::bit(52)::bigint
           AS escalation_policy_id,
       b.c_at AS created_at, b.from_row AS created_at_from_incident_row,
       extract(epoch FROM ack.first_at - b.c_at)::float8 AS seconds_to_first_ack,
       extract(epoch FROM res.at - b.c_at)::float8 AS seconds_to_resolve,
       coalesce(res.auto, false) AS auto_resolved,
       coalesce(esc.n, 0) AS escalation_count,
       coalesce(esc.by_timeout, 0) AS timeout_escalations,
       coalesce(esc.n - esc.by_timeout, 0) AS manual_escalations,
       greatest(coalesce(asg.n, 0) - 1, 0) AS reassignment_count,
       coalesce(ack.n, 0) AS ack_count,
       coalesce(notif.n, 0) AS notification_count,
       coalesce(bands.n, 0) AS interruptions,
       coalesce(bands.business, 0) AS interruptions_business,
       coalesce(bands.n - bands.business - bands.sleep, 0) AS interruptions_off_hours,
       coalesce(bands.sleep, 0) AS interruptions_sleep,
       CASE WHEN ackers.n >= 2 THEN extract(epoch FROM ackers.last_first - b.c_at)::float8 END
           AS seconds_to_mobilize,
       coalesce(ackers.ids, '{}') AS acknowledged_user_ids,
       coalesce(assignees.ids, '{}') AS assigned_user_ids,
       coalesce(last_entry.id, 0) AS last_entry_id
FROM base b
LEFT JOIN ack_agg ack ON ack.alert_id = b.id
LEFT JOIN acker_agg ackers ON ackers.alert_id = b.id
LEFT JOIN res ON res.alert_id = b.id
LEFT JOIN esc ON esc.alert_id = b.id
LEFT JOIN asg ON asg.alert_id = b.id
LEFT JOIN assignees ON assignees.alert_id = b.id
LEFT JOIN notif ON notif.alert_id = b.id
LEFT JOIN last_entry ON last_entry.alert_id = b.id
LEFT JOIN bands ON bands.alert_id = b.id
ORDER BY b.id
