-- GoAlert's own per-alert metrics (what its metrics engine stores in alert_metrics and its UI
-- reads back), computed from alert_logs for comparison with mttx's facts: for every alert with
-- a `closed` row, the time from alerts.created_at to the first `acknowledged` row and to the
-- first `closed` row, "escalated" = more than one `escalated` row, and the time to
-- acknowledge as GoAlert reads it back: coalesce(time_to_ack, time_to_close), so an alert
-- closed without an acknowledgement counts as acknowledged when it closed. Legacy rows
-- (status_changed, response_received) are neither `acknowledged` nor `closed` rows: an alert
-- closed by a legacy row has no metrics at all.
SELECT a.id AS alert_id,
       ('x' || substr(replace(a.service_id::text, '-', ''), 1, 13))::bit(52)::bigint AS service_id,
       extract(epoch FROM ack.at - a.created_at)::float8 AS time_to_ack,
       extract(epoch FROM cl.at - a.created_at)::float8 AS time_to_close,
       extract(epoch FROM coalesce(ack.at, cl.at) - a.created_at)::float8 AS goalert_time_to_ack,
       (SELECT count(*) FROM alert_logs l WHERE l.alert_id = a.id AND l.event = 'escalated') > 1
           AS escalated,
       cl.at AS closed_at
FROM alerts a
JOIN LATERAL (
    SELECT l."timestamp" AS at FROM alert_logs l
    WHERE l.alert_id = a.id AND l.event = 'closed' ORDER BY l."timestamp" LIMIT 1
) cl ON true
LEFT JOIN LATERAL (
    SELECT l."timestamp" AS at FROM alert_logs l
    WHERE l.alert_id = a.id AND l.event = 'acknowledged' ORDER BY l."timestamp" LIMIT 1
) ack ON true
WHERE a.service_id IS NOT NULL
ORDER BY a.id
