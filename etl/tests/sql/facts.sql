-- The independent oracle: every incident's facts computed with SQL straight over the replica,
-- written from docs/design.md "Metric definitions, version 1" and the readings fixed in
-- fixtures/golden/README.md, not from the Rust fold. One row per incident that has a row;
-- both attributions (v1: policy at trigger; v2: the incident row's policy).
WITH RECURSIVE e AS (
    -- The same event written twice counts once: keep the lowest id.
    SELECT * FROM (
        SELECT l.*, row_number() OVER (
            PARTITION BY incident_id, type, created_at, agent_type, agent_id, channel, user_id,
                         assignee_ids, escalation_policy_id, details
            ORDER BY id) AS copy
        FROM incident_log_entries l
    ) x WHERE copy = 1
),
trig AS (
    SELECT DISTINCT ON (incident_id) incident_id, created_at, escalation_policy_id
    FROM e WHERE type = 'trigger' ORDER BY incident_id, created_at, id
),
first_policy AS (
    SELECT DISTINCT ON (incident_id) incident_id, escalation_policy_id
    FROM e WHERE escalation_policy_id IS NOT NULL ORDER BY incident_id, created_at, id
),
base AS (
    SELECT i.id, i.account_id, i.incident_number, i.service_id, i.urgency, i.priority,
           i.escalation_policy_id AS policy_v2,
           COALESCE(t.created_at, i.created_at) AS c_at,
           t.incident_id IS NULL AS from_row,
           CASE WHEN t.incident_id IS NOT NULL AND t.escalation_policy_id IS NOT NULL
                THEN t.escalation_policy_id ELSE fp.escalation_policy_id END AS policy_v1
    FROM incidents i
    LEFT JOIN trig t ON t.incident_id = i.id
    LEFT JOIN first_policy fp ON fp.incident_id = i.id
),
acks AS (
    SELECT e.incident_id, e.agent_id, GREATEST(e.created_at, b.c_at) AS at
    FROM e JOIN base b ON b.id = e.incident_id WHERE e.type = 'acknowledge'
),
ack_agg AS (SELECT incident_id, count(*) AS n, min(at) AS first_at FROM acks GROUP BY 1),
ackers AS (
    SELECT incident_id, agent_id, min(at) AS first_at FROM acks
    WHERE agent_id IS NOT NULL GROUP BY 1, 2
),
acker_agg AS (
    SELECT incident_id, count(*) AS n, max(first_at) AS last_first,
           array_agg(agent_id ORDER BY agent_id) AS ids
    FROM ackers GROUP BY 1
),
res AS (
    SELECT DISTINCT ON (e.incident_id) e.incident_id, GREATEST(e.created_at, b.c_at) AS at,
           COALESCE(e.agent_type <> 'user', false) AS auto
    FROM e JOIN base b ON b.id = e.incident_id WHERE e.type = 'resolve'
    ORDER BY e.incident_id, e.created_at, e.id
),
-- Escalations are actions: the entries of one (one per assignee) share time, agent and
-- channel. A timeout: channel `timeout`, or a non-user agent on channel `auto`.
esc_actions AS (
    SELECT DISTINCT incident_id, created_at, agent_type, agent_id, channel,
           (channel = 'timeout' OR (channel = 'auto' AND agent_type <> 'user')) AS by_timeout
    FROM e WHERE type = 'escalate'
),
esc AS (
    SELECT incident_id, count(*) AS n, count(*) FILTER (WHERE by_timeout) AS by_timeout
    FROM esc_actions GROUP BY 1
),
-- Assignments are actions too: assign and delegate entries at one time are one. A
-- non-user's assign whose assignees all acknowledge at that time is part of the ack.
asg AS (
    SELECT incident_id, count(DISTINCT created_at) AS n FROM e
    WHERE type IN ('assign', 'delegate')
      AND NOT (type = 'assign' AND agent_type IS DISTINCT FROM 'user'
               AND COALESCE(cardinality(assignee_ids), 0) > 0
               AND NOT EXISTS (
                   SELECT 1 FROM unnest(e.assignee_ids) AS u
                   WHERE NOT EXISTS (
                       SELECT 1 FROM e a
                       WHERE a.incident_id = e.incident_id AND a.type = 'acknowledge'
                         AND a.created_at = e.created_at AND a.agent_id = u)))
    GROUP BY 1
),
assignees AS (
    SELECT incident_id, array_agg(DISTINCT u ORDER BY u) AS ids
    FROM e CROSS JOIN LATERAL unnest(e.assignee_ids) AS u
    WHERE type IN ('assign', 'delegate', 'escalate') GROUP BY 1
),
notif AS (SELECT incident_id, count(*) AS n FROM e WHERE type = 'notify' GROUP BY 1),
-- Reopenings: keep the resolves ('r') and the entries that put an incident back to work
-- ('o'), in time order with an 'o' at the very instant of an 'r' before it, then by id. An
-- 'o' right after an 'r' is a reopening; the final resolve is the first 'r' of a closing
-- run of 'r's that no 'o' follows.
moves AS (
    SELECT e.incident_id, e.created_at, e.id,
           CASE WHEN e.type = 'resolve' THEN 'r' ELSE 'o' END AS kind
    FROM e
    WHERE e.type IN ('resolve', 'trigger', 'acknowledge', 'unacknowledge', 'assign',
                     'delegate', 'escalate', 'snooze')
),
runs AS (
    SELECT m.*,
           lag(kind) OVER w AS prev_kind,
           count(*) FILTER (WHERE kind = 'o') OVER (
               PARTITION BY incident_id ORDER BY created_at DESC, kind = 'r' DESC, id DESC
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS opens_from_here
    FROM moves m
    WINDOW w AS (PARTITION BY incident_id ORDER BY created_at, kind = 'r', id)
),
reopen AS (
    SELECT r.incident_id,
           count(*) FILTER (WHERE kind = 'o' AND prev_kind = 'r') AS n,
           min(GREATEST(r.created_at, b.c_at)) FILTER (
               WHERE kind = 'r' AND prev_kind IS DISTINCT FROM 'r' AND opens_from_here = 0)
               AS final_at
    FROM runs r JOIN base b ON b.id = r.incident_id
    GROUP BY 1
),
unknown AS (
    SELECT incident_id, count(*) AS n FROM e
    WHERE type NOT IN ('trigger', 'acknowledge', 'unacknowledge', 'assign', 'delegate', 'escalate',
                       'notify', 'resolve', 'annotate', 'snooze', 'urgency_change', 'priority_change',
                       'reach_trigger_limit', 'repeat_escalation_path', 'exhaust_escalation_path')
    GROUP BY 1
),
last_entry AS (SELECT incident_id, max(id) AS id FROM incident_log_entries GROUP BY 1),
pages AS (
    SELECT incident_id, user_id, created_at,
           row_number() OVER (PARTITION BY incident_id, user_id ORDER BY created_at, id) AS n
    FROM e
    WHERE type = 'notify' AND channel IN ('sms', 'phone', 'push') AND user_id IS NOT NULL
),
-- A page counts unless a counted page to the same user came less than 60 s before it.
counted AS (
    SELECT incident_id, user_id, n, created_at, created_at AS anchor, true AS counts
    FROM pages WHERE n = 1
    UNION ALL
    SELECT p.incident_id, p.user_id, p.n, p.created_at,
           CASE WHEN p.created_at - c.anchor >= interval '60 seconds' THEN p.created_at ELSE c.anchor END,
           p.created_at - c.anchor >= interval '60 seconds'
    FROM counted c
    JOIN pages p ON p.incident_id = c.incident_id AND p.user_id = c.user_id AND p.n = c.n + 1
),
local_pages AS (
    SELECT c.incident_id, c.created_at AT TIME ZONE COALESCE(u.time_zone, a.time_zone) AS local
    FROM counted c
    JOIN incidents i ON i.id = c.incident_id
    JOIN accounts a ON a.id = i.account_id
    LEFT JOIN users u ON u.id = c.user_id
    WHERE c.counts
),
bands AS (
    SELECT incident_id, count(*) AS n,
           count(*) FILTER (WHERE extract(isodow FROM local) <= 5
                              AND local::time >= '08:00' AND local::time < '18:00') AS business,
           count(*) FILTER (WHERE local::time >= '22:00' OR local::time < '08:00') AS sleep
    FROM local_pages GROUP BY 1
)
SELECT b.id AS incident_id, b.account_id, b.incident_number, b.service_id,
       b.policy_v1 AS escalation_policy_id_v1,
       COALESCE(p1.team_id, s.team_id) AS team_id_v1,
       b.policy_v2 AS escalation_policy_id_v2,
       COALESCE(p2.team_id, s.team_id) AS team_id_v2,
       b.urgency, b.priority, COALESCE(b.priority IN ('P1', 'P2'), false) AS major,
       b.c_at AS created_at, b.from_row AS created_at_from_incident_row,
       extract(epoch FROM ack.first_at - b.c_at)::float8 AS seconds_to_first_ack,
       extract(epoch FROM res.at - b.c_at)::float8 AS seconds_to_resolve,
       COALESCE(res.auto, false) AS auto_resolved,
       COALESCE(esc.n, 0) AS escalation_count,
       COALESCE(esc.by_timeout, 0) AS timeout_escalations,
       COALESCE(esc.n - esc.by_timeout, 0) AS manual_escalations,
       GREATEST(COALESCE(asg.n, 0) - 1, 0) AS reassignment_count,
       COALESCE(ack.n, 0) AS ack_count,
       COALESCE(notif.n, 0) AS notification_count,
       COALESCE(bands.n, 0) AS interruptions,
       COALESCE(bands.business, 0) AS interruptions_business,
       COALESCE(bands.n - bands.business - bands.sleep, 0) AS interruptions_off_hours,
       COALESCE(bands.sleep, 0) AS interruptions_sleep,
       CASE WHEN ackers.n >= 2 THEN extract(epoch FROM ackers.last_first - b.c_at)::float8 END
           AS seconds_to_mobilize,
       COALESCE(ackers.ids, '{}') AS acknowledged_user_ids,
       COALESCE(assignees.ids, '{}') AS assigned_user_ids,
       COALESCE(unknown.n, 0) AS unknown_entry_count,
       COALESCE(last_entry.id, 0) AS last_entry_id,
       COALESCE(reopen.n, 0) AS reopen_count,
       reopen.final_at AS final_resolved_at
FROM base b
JOIN services s ON s.id = b.service_id
LEFT JOIN escalation_policies p1 ON p1.id = b.policy_v1
LEFT JOIN escalation_policies p2 ON p2.id = b.policy_v2
LEFT JOIN ack_agg ack ON ack.incident_id = b.id
LEFT JOIN acker_agg ackers ON ackers.incident_id = b.id
LEFT JOIN res ON res.incident_id = b.id
LEFT JOIN esc ON esc.incident_id = b.id
LEFT JOIN asg ON asg.incident_id = b.id
LEFT JOIN assignees ON assignees.incident_id = b.id
LEFT JOIN notif ON notif.incident_id = b.id
LEFT JOIN unknown ON unknown.incident_id = b.id
LEFT JOIN last_entry ON last_entry.incident_id = b.id
LEFT JOIN bands ON bands.incident_id = b.id
LEFT JOIN reopen ON reopen.incident_id = b.id
ORDER BY b.id
