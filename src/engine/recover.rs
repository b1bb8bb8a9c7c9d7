//! Recovery of pending creates (a crash or an uncertain failure between intent and link):
//! search the target for the marker; found → link, not found → create from the intent.
use super::*;

impl Engine {
    /// Resolves every pending create of the pair: the target is searched for the create's
    /// marker; found → linked, not found → created now. Runs before anything is polled.
    pub(super) async fn recover_intents(
        &self,
        pair: &PairConfig,
        meta: &PairMeta,
        cycle_id: Option<CycleId>,
        rep: &mut PairReport,
    ) -> Result<(), EngineError> {
        let name = pair.name.clone();
        let intents = self
            .db(&pair.name, move |db| db.pending_intents(Some(&name)))
            .await?;
        for it in intents {
            let mut out = GroupOutcome::default();
            let planned: Result<PlannedCreate, _> = it.planned_as();
            let r = match (&it.source, planned) {
                (ItemRef::Ado(src), Ok(PlannedCreate::ClickUp { create, planned })) => {
                    self.recover_to_clickup(pair, &it, *src, &create, &planned, cycle_id, &mut out)
                        .await
                }
                (ItemRef::ClickUp(src), Ok(PlannedCreate::Ado { create, planned })) => {
                    self.recover_to_ado(pair, meta, &it, src, &create, &planned, cycle_id, &mut out)
                        .await
                }
                (_, planned) => {
                    let why = match planned {
                        Err(e) => format!("its planned create does not decode: {e}"),
                        Ok(_) => "its planned create is for the wrong side".to_string(),
                    };
                    let id = it.id;
                    self.db(&pair.name, move |db| {
                        db.mark_intent_abandoned(id, &why, Utc::now())
                    })
                    .await
                }
            };
            if let Err(e) = r {
                match e {
                    EngineError::Api { source, .. } => out.failures.push(ItemFailure {
                        item: it.source.clone(),
                        error: format!("recovering the pending create {}: {source}", it.id),
                    }),
                    other => return Err(other),
                }
            }
            rep.tally.add(&out.tally);
            for f in out.failures {
                rep.failures.push((f.item.to_string(), f.error.clone()));
                rep.tally.failed += 1;
                self.record_failure(&pair.name, f.item, &f.error).await?;
            }
        }
        Ok(())
    }

    pub(super) fn search_since(&self, it: &Intent) -> DateTime<Utc> {
        // The intent's time is ours, the target's creation time is the service's: allow for
        // skew.
        let margin = chrono::Duration::from_std(self.opts.overlap.max(Duration::from_secs(300)))
            .unwrap_or(chrono::Duration::minutes(5));
        it.created_at - margin
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn recover_to_clickup(
        &self,
        pair: &PairConfig,
        it: &Intent,
        src_id: AdoId,
        create: &ClickUpCreate,
        planned: &Item,
        cycle_id: Option<CycleId>,
        out: &mut GroupOutcome,
    ) -> Result<(), EngineError> {
        let name = pair.name.clone();
        let api = Self::api(&pair.name);
        let slot = self
            .ado
            .read_batch(&[src_id], true)
            .await
            .map_err(&api)?
            .pop();
        let src = match slot {
            Some(AdoSlot::Found(r)) => r,
            Some(AdoSlot::Malformed(e)) => return Err(api(e)),
            _ => {
                let id = it.id;
                return self
                    .db(&pair.name, move |db| {
                        db.mark_intent_abandoned(id, "the source ADO item is gone", Utc::now())
                    })
                    .await;
            }
        };
        let (n, id) = (name.clone(), it.id);
        if let Some(l) = self
            .db(&pair.name, move |db| db.link_by_ado(&n, src_id))
            .await?
        {
            let cu = l.clickup_id.clone();
            return self
                .db(&pair.name, move |db| {
                    db.mark_intent_done(id, &cu, Utc::now())
                })
                .await;
        }
        let since = self.search_since(it).timestamp_millis();
        let poll = self
            .clickup
            .created_since(std::slice::from_ref(&create.list_id), since)
            .await
            .map_err(&api)?;
        let ids: Vec<ClickUpId> = poll.tasks.iter().map(|t| t.id.clone()).collect();
        let n = name.clone();
        let linked: HashSet<ClickUpId> = self
            .db(&pair.name, move |db| db.links_by_clickup(&n, &ids))
            .await?
            .into_iter()
            .map(|l| l.clickup_id)
            .collect();
        let by_marker = self.clickup.backlink_field_id().is_some();
        let hinted = backlink_target_clickup(&src);
        let mut candidates: Vec<&ClickUpRecord> = poll
            .tasks
            .iter()
            .filter(|t| !linked.contains(&t.id))
            .filter(|t| {
                Some(&t.id) == hinted.as_ref()
                    || if by_marker {
                        backlink_target_ado(t) == Some(src_id)
                    } else {
                        Some(&t.name) == create.fields.name.as_ref()
                    }
            })
            .collect();
        candidates.sort_by_key(|t| (Some(&t.id) != hinted.as_ref(), t.date_created));
        match candidates.first() {
            Some(task) => {
                tracing::info!(pair = %pair.name, ado = src_id, task = %task.id, "pending create found by its marker; linked");
                let Some(link) = self
                    .record_created(
                        &pair.name,
                        it.id,
                        src_id,
                        &task.id,
                        planned,
                        // Either side may have changed since the create was planned.
                        UNKNOWN_MARKER,
                        UNKNOWN_MARKER,
                        &it.source,
                        out,
                    )
                    .await?
                else {
                    return Ok(());
                };
                out.tally.recovered += 1;
                let mut e = Self::audit_entry(
                    &pair.name,
                    cycle_id,
                    Some(link),
                    Side::ClickUp,
                    task.id.clone(),
                    AuditAction::Link,
                    vec![],
                );
                e.detail = Some(format!("recovered the pending create of ADO #{src_id}"));
                self.audit(&pair.name, e).await?;
                if !src.hyperlinks.iter().any(|u| u == &task.url) {
                    self.add_ado_backlink(&pair.name, src_id, src.rev, &task.url, link, cycle_id)
                        .await?;
                }
                Ok(())
            }
            None => {
                tracing::info!(pair = %pair.name, ado = src_id, "pending create not found in ClickUp; creating it");
                self.create_in_clickup(pair, &src, create, planned, Some(it.id), cycle_id, out)
                    .await
                    .map(|_| ())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn recover_to_ado(
        &self,
        pair: &PairConfig,
        meta: &PairMeta,
        it: &Intent,
        src_id: &str,
        create: &AdoCreate,
        planned: &Item,
        cycle_id: Option<CycleId>,
        out: &mut GroupOutcome,
    ) -> Result<(), EngineError> {
        let name = pair.name.clone();
        let api = Self::api(&pair.name);
        let src = match self.clickup.get_task(src_id).await {
            Ok(t) => t,
            Err(ApiError::NotFound { .. }) => {
                let id = it.id;
                return self
                    .db(&pair.name, move |db| {
                        db.mark_intent_abandoned(id, "the source ClickUp task is gone", Utc::now())
                    })
                    .await;
            }
            Err(e) => return Err(api(e)),
        };
        let (n, id, s) = (name.clone(), it.id, src_id.to_string());
        if let Some(l) = self
            .db(&pair.name, move |db| db.link_by_clickup(&n, &s))
            .await?
        {
            let a = l.ado_id.to_string();
            return self
                .db(&pair.name, move |db| {
                    db.mark_intent_done(id, &a, Utc::now())
                })
                .await;
        }
        let since = self.search_since(it);
        let mut ids = self
            .ado
            .ids_created_since(&create.work_item_type, since)
            .await
            .map_err(&api)?;
        if let Some(h) = backlink_target_ado(&src) {
            if !ids.contains(&h) {
                ids.push(h);
            }
        }
        let slots = if ids.is_empty() {
            Vec::new()
        } else {
            self.ado.read_batch(&ids, true).await.map_err(&api)?
        };
        let found: Vec<AdoRecord> = slots
            .into_iter()
            .filter_map(|s| match s {
                AdoSlot::Found(r) => Some(r),
                _ => None,
            })
            .filter(|r| backlink_target_clickup(r).as_deref() == Some(src_id))
            .collect();
        let found_ids: Vec<AdoId> = found.iter().map(|r| r.id).collect();
        let n = name.clone();
        let linked: HashSet<AdoId> = self
            .db(&pair.name, move |db| db.links_by_ado(&n, &found_ids))
            .await?
            .into_iter()
            .map(|l| l.ado_id)
            .collect();
        let mut candidates: Vec<&AdoRecord> =
            found.iter().filter(|r| !linked.contains(&r.id)).collect();
        candidates.sort_by_key(|r| r.id);
        match candidates.first() {
            Some(item) => {
                tracing::info!(pair = %pair.name, task = src_id, ado = item.id, "pending create found by its marker; linked");
                let Some(link) = self
                    .record_created(
                        &pair.name,
                        it.id,
                        item.id,
                        src_id,
                        planned,
                        // Either side may have changed since the create was planned.
                        UNKNOWN_MARKER,
                        UNKNOWN_MARKER,
                        &it.source,
                        out,
                    )
                    .await?
                else {
                    return Ok(());
                };
                out.tally.recovered += 1;
                let mut e = Self::audit_entry(
                    &pair.name,
                    cycle_id,
                    Some(link),
                    Side::Ado,
                    item.id.to_string(),
                    AuditAction::Link,
                    vec![],
                );
                e.detail = Some(format!(
                    "recovered the pending create of ClickUp task {src_id}"
                ));
                self.audit(&pair.name, e).await?;
                if self.clickup.backlink_field_id().is_some()
                    && src.backlink.as_deref() != Some(item.web_url.as_str())
                {
                    if let Err(e) = self.clickup.set_backlink(src_id, &item.web_url).await {
                        tracing::warn!(error = %e, "could not set the back-link field");
                    }
                }
                Ok(())
            }
            None => {
                tracing::info!(pair = %pair.name, task = src_id, "pending create not found in ADO; creating it");
                self.create_in_ado(
                    pair,
                    meta,
                    &src,
                    create,
                    planned,
                    Some(it.id),
                    cycle_id,
                    out,
                )
                .await
                .map(|_| ())
            }
        }
    }
}
