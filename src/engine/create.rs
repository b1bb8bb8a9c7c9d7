//! Creates without duplicates: intent first, then the remote create carrying its back-link
//! marker, then link + base + intent closed in one transaction, then the source's own
//! back-link.
use super::*;

impl Engine {
    /// Creates the ClickUp counterpart of ADO item `src`: intent first, then the create (with
    /// the ADO URL in the link custom field when there is one), then the link, then the ADO
    /// item's own back-link. Returns the new task's id.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn create_in_clickup(
        &self,
        pair: &PairConfig,
        src: &AdoRecord,
        create: &ClickUpCreate,
        planned: &Item,
        intent: Option<i64>,
        cycle_id: Option<CycleId>,
        out: &mut GroupOutcome,
    ) -> Result<Option<ClickUpId>, EngineError> {
        let name = pair.name.as_str();
        let source = ItemRef::Ado(src.id);
        let resumed = intent.is_some();
        let Some(intent) = self
            .open_intent(
                name,
                intent,
                &source,
                PlannedCreate::ClickUp {
                    create: create.clone(),
                    planned: planned.clone(),
                },
            )
            .await?
        else {
            return Ok(None);
        };
        crash_point("engine::after_intent")?;
        let r = {
            let _p = self.clickup_slots.acquire().await;
            self.clickup.create_task(create).await
        };
        let task = match r {
            Ok(t) => t,
            Err(e) => {
                self.create_failed(name, intent, &source, &e, cycle_id, Side::ClickUp, out)
                    .await?;
                return Ok(None);
            }
        };
        crash_point("engine::after_remote_create")?;
        // Resuming an intent: the source was read now, the planned create earlier.
        let src_marker = if resumed { UNKNOWN_MARKER } else { src.rev };
        let Some(link) = self
            .record_created(
                name,
                intent,
                src.id,
                &task.id,
                planned,
                src_marker,
                task.date_updated,
                &source,
                out,
            )
            .await?
        else {
            return Ok(None);
        };
        crash_point("engine::after_link_recorded")?;
        out.tally.created_clickup += 1;
        let mut e = Self::audit_entry(
            name,
            cycle_id,
            Some(link),
            Side::ClickUp,
            task.id.clone(),
            AuditAction::Create,
            clickup_patch_fields(&create.fields),
        );
        e.after = Some(values(planned, &e.fields));
        e.detail = Some(format!("from ADO #{}", src.id));
        self.audit(name, e).await?;

        // The source's own back-link: a Hyperlink relation to the task.
        let mut marker = src_marker;
        if !src.hyperlinks.iter().any(|u| u == &task.url) {
            let after = self
                .add_ado_backlink(name, src.id, src.rev, &task.url, link, cycle_id)
                .await?;
            marker = if resumed { UNKNOWN_MARKER } else { after };
        }
        self.store_base(name, link, planned, marker, task.date_updated)
            .await?;
        crash_point("engine::after_base_stored")?;
        Ok(Some(task.id))
    }

    /// Creates the ADO counterpart of ClickUp task `src` (with a Hyperlink relation to the
    /// task: the marker), then the link, then the task's back-link field when configured.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn create_in_ado(
        &self,
        pair: &PairConfig,
        meta: &PairMeta,
        src: &ClickUpRecord,
        create: &AdoCreate,
        planned: &Item,
        intent: Option<i64>,
        cycle_id: Option<CycleId>,
        out: &mut GroupOutcome,
    ) -> Result<Option<AdoId>, EngineError> {
        let name = pair.name.as_str();
        let source = ItemRef::ClickUp(src.id.clone());
        let resumed = intent.is_some();
        let Some(intent) = self
            .open_intent(
                name,
                intent,
                &source,
                PlannedCreate::Ado {
                    create: create.clone(),
                    planned: planned.clone(),
                },
            )
            .await?
        else {
            return Ok(None);
        };
        crash_point("engine::after_intent")?;
        let mut r = {
            let _p = self.ado_slots.acquire().await;
            self.ado.create(create).await
        };
        if let Err(e) = &r {
            // A 400 creates nothing, so trying again without the unknown assignee is safe.
            if self.learn_unknown_identity(e, create.fields.assigned_to.as_ref()) {
                let mut c = create.clone();
                c.fields.assigned_to = None;
                let _p = self.ado_slots.acquire().await;
                r = self.ado.create(&c).await;
            }
        }
        let item = match r {
            Ok(t) => t,
            Err(e) => {
                self.create_failed(name, intent, &source, &e, cycle_id, Side::Ado, out)
                    .await?;
                return Ok(None);
            }
        };
        crash_point("engine::after_remote_create")?;
        let Some(link) = self
            .record_created(
                name,
                intent,
                item.id,
                &src.id,
                planned,
                item.rev,
                // Resuming an intent: the source was read now, the planned create earlier.
                if resumed {
                    UNKNOWN_MARKER
                } else {
                    src.date_updated
                },
                &source,
                out,
            )
            .await?
        else {
            return Ok(None);
        };
        crash_point("engine::after_link_recorded")?;
        out.tally.created_ado += 1;
        let mut e = Self::audit_entry(
            name,
            cycle_id,
            Some(link),
            Side::Ado,
            item.id.to_string(),
            AuditAction::Create,
            ado_patch_fields(&create.fields),
        );
        e.after = Some(values(planned, &e.fields));
        e.detail = Some(format!("from ClickUp task {}", src.id));
        self.audit(name, e).await?;

        let mut updated = if resumed {
            UNKNOWN_MARKER
        } else {
            src.date_updated
        };
        if self.clickup.backlink_field_id().is_some()
            && src.backlink.as_deref() != Some(item.web_url.as_str())
        {
            let r = {
                let _p = self.clickup_slots.acquire().await;
                self.clickup.set_backlink(&src.id, &item.web_url).await
            };
            match r {
                Ok(t) => {
                    // ClickUp has no conditional write: the task may have been edited since
                    // it was read; its marker is ours only if it still shows what was planned.
                    if !resumed && self.clickup_shows(pair, meta, &t, planned) {
                        updated = t.date_updated;
                    } else {
                        updated = UNKNOWN_MARKER;
                    }
                    let e = Self::audit_entry(
                        name,
                        cycle_id,
                        Some(link),
                        Side::ClickUp,
                        src.id.clone(),
                        AuditAction::Backlink,
                        vec![],
                    );
                    self.audit(name, e).await?;
                }
                Err(e) => {
                    tracing::warn!(pair = name, task = %src.id, error = %e, "could not set the back-link field");
                    self.audit_failed(
                        name,
                        cycle_id,
                        Some(link),
                        Side::ClickUp,
                        src.id.clone(),
                        AuditAction::Backlink,
                        vec![],
                        &e.to_string(),
                    )
                    .await?;
                }
            }
        }
        self.store_base(name, link, planned, item.rev, updated)
            .await?;
        crash_point("engine::after_base_stored")?;
        Ok(Some(item.id))
    }

    /// Records the intent of a create (unless resuming one). `None` when another create of
    /// the same item is still pending: recovery settles that one first.
    pub(super) async fn open_intent(
        &self,
        pair: &str,
        resume: Option<i64>,
        source: &ItemRef,
        planned: PlannedCreate,
    ) -> Result<Option<i64>, EngineError> {
        if let Some(id) = resume {
            return Ok(Some(id));
        }
        crash_point("engine::before_create")?;
        let name = pair.to_string();
        let src = source.clone();
        let r = self
            .store
            .call(move |db| db.create_intent(&name, &src, &planned, Utc::now()))
            .await;
        match r {
            Ok(id) => Ok(Some(id)),
            Err(StoreError::IntentAlreadyPending { .. }) => Ok(None),
            Err(source) => Err(EngineError::Store {
                pair: pair.to_string(),
                source,
            }),
        }
    }

    /// A create that failed: when the service surely made nothing (it refused the request),
    /// the intent is closed; when it may have (a timeout, a 5xx, an unreadable answer), the
    /// intent stays pending and recovery looks for the marker before creating again.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn create_failed(
        &self,
        pair: &str,
        intent: i64,
        source: &ItemRef,
        e: &ApiError,
        cycle_id: Option<CycleId>,
        target: Side,
        out: &mut GroupOutcome,
    ) -> Result<(), EngineError> {
        let nothing_made = matches!(
            e,
            ApiError::Validation { .. }
                | ApiError::Auth { .. }
                | ApiError::NotFound { .. }
                | ApiError::RateLimited { .. }
                | ApiError::Conflict { .. }
        );
        let msg = e.to_string();
        if nothing_made {
            let m = msg.clone();
            self.db(pair, move |db| {
                db.mark_intent_abandoned(intent, &m, Utc::now())
            })
            .await?;
        }
        self.audit_failed(
            pair,
            cycle_id,
            None,
            target,
            source.id_text(),
            AuditAction::Create,
            vec![],
            &msg,
        )
        .await?;
        tracing::warn!(pair, %source, error = %msg, "create failed");
        out.failures.push(ItemFailure {
            item: source.clone(),
            error: msg,
        });
        Ok(())
    }

    /// Records the link of a create and closes its intent, in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn record_created(
        &self,
        pair: &str,
        intent: i64,
        ado_id: AdoId,
        clickup_id: &str,
        planned: &Item,
        ado_rev: i64,
        clickup_updated: i64,
        source: &ItemRef,
        out: &mut GroupOutcome,
    ) -> Result<Option<LinkId>, EngineError> {
        let nl = NewLink {
            pair: pair.to_string(),
            ado_id,
            clickup_id: clickup_id.to_string(),
            base: planned.clone(),
            ado_rev,
            clickup_updated,
        };
        let r = self
            .store
            .call(move |db| db.record_link_with_snapshot(Some(intent), &nl, Utc::now()))
            .await;
        match r {
            Ok(id) => Ok(Some(id)),
            Err(e @ StoreError::DuplicateLink { .. }) => {
                // Should not happen (the source was unlinked when planned); the intent stays
                // pending and recovery sorts it out.
                tracing::error!(pair, %source, error = %e, "created item could not be linked");
                out.failures.push(ItemFailure {
                    item: source.clone(),
                    error: e.to_string(),
                });
                Ok(None)
            }
            Err(source) => Err(EngineError::Store {
                pair: pair.to_string(),
                source,
            }),
        }
    }

    /// Adds the Hyperlink back-link to ADO item `id`; on a stale rev reads it again and tries
    /// once more. Returns the item's rev afterwards (best effort: a failure is only logged).
    pub(super) async fn add_ado_backlink(
        &self,
        pair: &str,
        id: AdoId,
        rev: i64,
        url: &str,
        link: LinkId,
        cycle_id: Option<CycleId>,
    ) -> Result<i64, EngineError> {
        let first = {
            let _p = self.ado_slots.acquire().await;
            self.ado.add_hyperlink(id, rev, url).await
        };
        // Only a write that passed `test /rev` at the rev the base was read at leaves an item
        // holding nothing but the base and our link.
        let clean = first.is_ok();
        let r = match first {
            Err(ApiError::Conflict { .. }) => {
                let _p = self.ado_slots.acquire().await;
                match self.ado.get(id).await {
                    Ok(cur) if cur.hyperlinks.iter().any(|u| u == url) => Ok(cur),
                    Ok(cur) => self.ado.add_hyperlink(id, cur.rev, url).await,
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        match r {
            Ok(rec) => {
                let e = Self::audit_entry(
                    pair,
                    cycle_id,
                    Some(link),
                    Side::Ado,
                    id.to_string(),
                    AuditAction::Backlink,
                    vec![],
                );
                self.audit(pair, e).await?;
                Ok(if clean { rec.rev } else { UNKNOWN_MARKER })
            }
            Err(e) => {
                tracing::warn!(pair, ado = id, error = %e, "could not add the back-link to ADO");
                self.audit_failed(
                    pair,
                    cycle_id,
                    Some(link),
                    Side::Ado,
                    id.to_string(),
                    AuditAction::Backlink,
                    vec![],
                    &e.to_string(),
                )
                .await?;
                Ok(rev)
            }
        }
    }
}
