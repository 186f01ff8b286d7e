//! A generated account rendered as PagerDuty JSON (several thousand incidents, with the bad
//! input a real log has, a share written PagerDuty's way), imported through the local
//! PagerDuty and folded: every incident's facts equal those of the same replica written
//! directly, once ids are translated through the import's id table.
