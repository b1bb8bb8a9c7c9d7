//! Carrying a plan out: actions grouped by link, groups concurrently within the per-side
//! limits; the `test /rev` guard and re-plan on ADO, re-read and re-plan on ClickUp; a new
//! base (with its change markers) after every write; failures to the retries table.
use super::*;

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn apply(
        &self,
        pair: &PairConfig,
        meta: &PairMeta,
        obs: &Observation,
        plan: &Plan,
        cycle_id: Option<CycleId>,
        cancel: &CancellationToken,
        due: &HashSet<ItemRef>,
    ) -> Result<GroupOutcome, EngineError> {
        // Group the actions by link (in plan order); each create is a group of its own.
        let mut groups: Vec<Vec<&Action>> = Vec::new();
        let mut keys: BTreeMap<LinkRef, usize> = BTreeMap::new();
        for a in &plan.actions {
            let key = match a {
                Action::Link {
                    ado_id, clickup_id, ..
                } => Some(LinkRef::New {
                    ado_id: *ado_id,
                    clickup_id: clickup_id.clone(),
                }),
                Action::UpdateAdo { link, .. }
                | Action::UpdateClickUp { link, .. }
                | Action::Rebase { link, .. }
                | Action::RecordConflict { link, .. } => Some(link.clone()),
                Action::Unlink { link, .. } => Some(LinkRef::Existing(*link)),
                Action::CreateInAdo { .. } | Action::CreateInClickUp { .. } => None,
            };
            match key {
                Some(k) => match keys.get(&k) {
                    Some(&i) => groups[i].push(a),
                    None => {
                        keys.insert(k, groups.len());
                        groups.push(vec![a]);
                    }
                },
                None => groups.push(vec![a]),
            }
        }
        let width = self
            .opts
            .ado_concurrency
            .max(self.opts.clickup_concurrency)
            .max(1);
        let results: Vec<Result<GroupOutcome, EngineError>> = futures::stream::iter(groups)
            .map(|g| async move {
                if cancel.is_cancelled() {
                    return Ok(GroupOutcome::default());
                }
                self.apply_group(pair, meta, obs, &g, cycle_id).await
            })
            .buffer_unordered(width)
            .collect()
            .await;
        let mut total = GroupOutcome::default();
        let mut first_err = None;
        for r in results {
            match r {
                Ok(o) => {
                    total.tally.add(&o.tally);
                    total.failures.extend(o.failures);
                    total.revisit.extend(o.revisit);
                    total.succeeded.extend(o.succeeded);
                    total.applied_resolutions.extend(o.applied_resolutions);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        // Bookkeeping: failures to the retries table, successes out of it.
        let name = pair.name.clone();
        let failures = total.failures.clone();
        let succeeded: Vec<ItemRef> = total
            .succeeded
            .iter()
            .filter(|i| due.contains(i))
            .cloned()
            .collect();
        let resolved = total.applied_resolutions.clone();
        let policy = self.opts.retry;
        self.db(&pair.name, move |db| {
            let now = Utc::now();
            for f in &failures {
                db.record_failure(&name, &f.item, &f.error, now, &policy)?;
            }
            for s in &succeeded {
                db.clear_retry(&name, s)?;
            }
            for id in &resolved {
                db.mark_conflict_applied(*id, now)?;
            }
            Ok(())
        })
        .await?;
        total.tally.failed += total.failures.len() as u64;
        match first_err {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    pub(super) fn notify(&self, pair: &str, a: &Action, outcome: Result<(), &str>) {
        self.notify_ids(pair, a, None, None, outcome)
    }

    /// As [`Engine::notify`], naming the link's items where the action itself does not.
    pub(super) fn notify_ids(
        &self,
        pair: &str,
        a: &Action,
        ado: Option<AdoId>,
        clickup: Option<&str>,
        outcome: Result<(), &str>,
    ) {
        if let Some(o) = &self.observer {
            let mut row = ActionRow::of(a);
            row.ado_id = row.ado_id.or(ado);
            if row.clickup_id.is_none() {
                row.clickup_id = clickup.map(str::to_string);
            }
            o.applied(pair, &row, outcome);
        }
    }

    pub(super) async fn audit(&self, pair: &str, entry: AuditEntry) -> Result<(), EngineError> {
        self.db(pair, move |db| db.append_audit(&entry).map(|_| ()))
            .await
    }

    pub(super) fn audit_entry(
        pair: &str,
        cycle_id: Option<CycleId>,
        link: Option<LinkId>,
        side: Side,
        item_id: String,
        action: AuditAction,
        fields: Vec<Field>,
    ) -> AuditEntry {
        AuditEntry {
            at: Utc::now(),
            cycle_id,
            pair: Some(pair.to_string()),
            link_id: link,
            side: Some(side),
            item_id: Some(item_id),
            action,
            fields,
            before: None,
            after: None,
            outcome: AuditOutcome::Ok,
            detail: None,
        }
    }

    /// Applies one link's actions in order, or one create. Item failures end up in `out`;
    /// only store failures (and failpoints) are errors.
    pub(super) async fn apply_group(
        &self,
        pair: &PairConfig,
        meta: &PairMeta,
        obs: &Observation,
        actions: &[&Action],
        cycle_id: Option<CycleId>,
    ) -> Result<GroupOutcome, EngineError> {
        let mut out = GroupOutcome::default();
        let Some(first) = actions.first().copied() else {
            return Ok(out);
        };
        match first {
            Action::CreateInClickUp {
                source,
                create,
                planned,
            } => {
                let Some(src) = obs.ado.get(source) else {
                    return Ok(out);
                };
                let made = self
                    .create_in_clickup(pair, src, create, planned, None, cycle_id, &mut out)
                    .await?;
                self.notify_result(&pair.name, first, &out);
                if let Some(c) = made {
                    out.succeeded.push(ItemRef::Ado(src.id));
                    // Its parent had no counterpart when this was planned; now it may.
                    if src.parent.is_some() && planned.parent.is_none() {
                        out.revisit.push((src.id, c));
                    }
                }
                return Ok(out);
            }
            Action::CreateInAdo {
                source,
                create,
                planned,
            } => {
                let Some(src) = obs.clickup.get(source) else {
                    return Ok(out);
                };
                let made = self
                    .create_in_ado(pair, meta, src, create, planned, None, cycle_id, &mut out)
                    .await?;
                self.notify_result(&pair.name, first, &out);
                if let Some(a) = made {
                    out.succeeded.push(ItemRef::ClickUp(src.id.clone()));
                    if src.parent.is_some() && planned.parent.is_none() {
                        out.revisit.push((a, src.id.clone()));
                    }
                }
                return Ok(out);
            }
            _ => {}
        }

        let (link, ado_id, cu_id, base) = match first {
            Action::Link {
                ado_id, clickup_id, ..
            } => (None, *ado_id, clickup_id.clone(), None),
            other => {
                let id = match other {
                    Action::UpdateAdo {
                        link: LinkRef::Existing(id),
                        ..
                    }
                    | Action::UpdateClickUp {
                        link: LinkRef::Existing(id),
                        ..
                    }
                    | Action::Rebase {
                        link: LinkRef::Existing(id),
                        ..
                    }
                    | Action::RecordConflict {
                        link: LinkRef::Existing(id),
                        ..
                    }
                    | Action::Unlink { link: id, .. } => *id,
                    _ => return Ok(out),
                };
                let Some(s) = obs.links.iter().find(|s| s.link == id) else {
                    return Ok(out);
                };
                (
                    Some(id),
                    s.ado_id,
                    s.clickup_id.clone(),
                    Some(s.base.clone()),
                )
            }
        };
        match (obs.ado.get(&ado_id), obs.clickup.get(&cu_id)) {
            (Some(a), Some(c)) => {
                let mut w = LinkWork {
                    link,
                    clickup_checked: false,
                    ado: a.clone(),
                    clickup: c.clone(),
                    base,
                };
                let ok = self
                    .apply_link_actions(pair, meta, obs, actions, &mut w, true, cycle_id, &mut out)
                    .await?;
                if ok {
                    out.succeeded.push(ItemRef::Ado(ado_id));
                    out.succeeded.push(ItemRef::ClickUp(cu_id));
                    if let Some(res) = w.link.and_then(|l| obs.resolutions.get(&l)) {
                        out.applied_resolutions.extend(res.iter().map(|c| c.id));
                    }
                }
            }
            (a, c) => {
                let Some(link) = link else {
                    return Ok(out);
                };
                self.apply_vanished(
                    pair, link, ado_id, &cu_id, actions, a, c, cycle_id, &mut out,
                )
                .await?;
            }
        }
        Ok(out)
    }

    pub(super) fn notify_result(&self, pair: &str, a: &Action, out: &GroupOutcome) {
        match out.failures.last() {
            Some(f) => self.notify(pair, a, Err(&f.error)),
            None => self.notify(pair, a, Ok(())),
        }
    }

    pub(super) fn fail(
        &self,
        pair: &str,
        a: &Action,
        out: &mut GroupOutcome,
        item: ItemRef,
        error: String,
    ) {
        tracing::warn!(pair, %item, %error, "write failed");
        self.notify(pair, a, Err(&error));
        out.failures.push(ItemFailure { item, error });
    }

    /// The actions of a link whose two records are both present. Returns whether all of them
    /// were applied.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn apply_link_actions(
        &self,
        pair: &PairConfig,
        meta: &PairMeta,
        obs: &Observation,
        actions: &[&Action],
        w: &mut LinkWork,
        allow_replan: bool,
        cycle_id: Option<CycleId>,
        out: &mut GroupOutcome,
    ) -> Result<bool, EngineError> {
        let name = pair.name.as_str();
        let mut linked_now = false;
        for a in actions.iter().copied() {
            match a {
                Action::Link {
                    ado_id,
                    clickup_id,
                    base,
                } => {
                    let nl = NewLink {
                        pair: name.to_string(),
                        ado_id: *ado_id,
                        clickup_id: clickup_id.clone(),
                        base: base.clone(),
                        ado_rev: w.ado.rev,
                        clickup_updated: w.clickup.date_updated,
                    };
                    let r = self
                        .store
                        .call(move |db| db.record_link_with_snapshot(None, &nl, Utc::now()))
                        .await;
                    match r {
                        Ok(id) => {
                            w.link = Some(id);
                            w.base = Some(base.clone());
                            linked_now = true;
                            out.tally.linked += 1;
                            let e = Self::audit_entry(
                                name,
                                cycle_id,
                                Some(id),
                                Side::Ado,
                                ado_id.to_string(),
                                AuditAction::Link,
                                vec![],
                            );
                            self.audit(
                                name,
                                AuditEntry {
                                    detail: Some(format!(
                                        "matched ClickUp task {clickup_id} by back-link"
                                    )),
                                    ..e
                                },
                            )
                            .await?;
                            self.notify_ids(name, a, Some(w.ado.id), Some(&w.clickup.id), Ok(()));
                        }
                        Err(e @ StoreError::DuplicateLink { .. }) => {
                            self.fail(name, a, out, ItemRef::Ado(*ado_id), e.to_string());
                            return Ok(false);
                        }
                        Err(source) => {
                            return Err(EngineError::Store {
                                pair: name.to_string(),
                                source,
                            })
                        }
                    }
                }
                Action::UpdateAdo {
                    ado_id,
                    expected_rev,
                    patch,
                    new_base,
                    ..
                } => {
                    let Some(link) = w.link else { return Ok(false) };
                    let r = self.ado_update(*ado_id, *expected_rev, patch).await;
                    match r {
                        Ok(rec) => {
                            w.ado = rec;
                            self.store_base(
                                name,
                                link,
                                new_base,
                                w.ado.rev,
                                w.clickup.date_updated,
                            )
                            .await?;
                            out.tally.updated_ado += 1;
                            let mut e = Self::audit_entry(
                                name,
                                cycle_id,
                                Some(link),
                                Side::Ado,
                                ado_id.to_string(),
                                AuditAction::Update,
                                ado_patch_fields(patch),
                            );
                            e.before = w.base.as_ref().map(|b| values(b, &e.fields));
                            e.after = Some(values(new_base, &e.fields));
                            w.base = Some(new_base.clone());
                            self.audit(name, e).await?;
                            self.notify_ids(name, a, Some(w.ado.id), Some(&w.clickup.id), Ok(()));
                        }
                        Err(ApiError::Conflict { .. }) if allow_replan => {
                            // Someone edited the item since it was read: merge again with its
                            // new state rather than overwrite it.
                            let fresh = {
                                let _p = self.ado_slots.acquire().await;
                                self.ado.read_batch(&[*ado_id], false).await
                            };
                            match fresh.map(|mut v| v.pop()) {
                                Ok(Some(AdoSlot::Found(rec))) => {
                                    w.ado = rec;
                                    return Box::pin(
                                        self.replan(pair, meta, obs, w, cycle_id, out),
                                    )
                                    .await;
                                }
                                Ok(_) => {
                                    let msg = format!(
                                        "ADO #{ado_id} changed during the write and could not be read again"
                                    );
                                    self.fail(name, a, out, ItemRef::Ado(*ado_id), msg);
                                    return Ok(false);
                                }
                                Err(e) => {
                                    self.fail(name, a, out, ItemRef::Ado(*ado_id), e.to_string());
                                    return Ok(false);
                                }
                            }
                        }
                        Err(e) => {
                            self.audit_failed(
                                name,
                                cycle_id,
                                Some(link),
                                Side::Ado,
                                ado_id.to_string(),
                                AuditAction::Update,
                                ado_patch_fields(patch),
                                &e.to_string(),
                            )
                            .await?;
                            self.fail(name, a, out, ItemRef::Ado(*ado_id), e.to_string());
                            return Ok(false);
                        }
                    }
                }
                Action::UpdateClickUp {
                    clickup_id,
                    expected_date_updated,
                    patch,
                    new_base,
                    ..
                } => {
                    let Some(link) = w.link else { return Ok(false) };
                    if !w.clickup_checked {
                        // ClickUp has no conditional write: read just before writing, and
                        // merge again if the task moved since it was planned.
                        let cur = {
                            let _p = self.clickup_slots.acquire().await;
                            self.clickup.get_task(clickup_id).await
                        };
                        match cur {
                            Ok(t) => {
                                w.clickup_checked = true;
                                let moved = t.date_updated != *expected_date_updated;
                                w.clickup = t;
                                if moved {
                                    if allow_replan {
                                        return Box::pin(
                                            self.replan(pair, meta, obs, w, cycle_id, out),
                                        )
                                        .await;
                                    }
                                    let msg = format!(
                                        "ClickUp task {clickup_id} changed again while being synced"
                                    );
                                    self.fail(
                                        name,
                                        a,
                                        out,
                                        ItemRef::ClickUp(clickup_id.clone()),
                                        msg,
                                    );
                                    return Ok(false);
                                }
                            }
                            Err(e) => {
                                self.fail(
                                    name,
                                    a,
                                    out,
                                    ItemRef::ClickUp(clickup_id.clone()),
                                    e.to_string(),
                                );
                                return Ok(false);
                            }
                        }
                    }
                    let r = {
                        let _p = self.clickup_slots.acquire().await;
                        self.clickup.update_task(clickup_id, patch).await
                    };
                    match r {
                        Ok(t) => {
                            // The answer carries our write and anything written meanwhile
                            // (ClickUp has no conditional write): its marker is ours only if
                            // the task shows exactly what we wrote.
                            let marker = if self.clickup_shows(pair, meta, &t, new_base) {
                                t.date_updated
                            } else {
                                UNKNOWN_MARKER
                            };
                            w.clickup.date_updated = t.date_updated;
                            self.store_base(name, link, new_base, w.ado.rev, marker)
                                .await?;
                            out.tally.updated_clickup += 1;
                            let mut e = Self::audit_entry(
                                name,
                                cycle_id,
                                Some(link),
                                Side::ClickUp,
                                clickup_id.clone(),
                                AuditAction::Update,
                                clickup_patch_fields(patch),
                            );
                            e.before = w.base.as_ref().map(|b| values(b, &e.fields));
                            e.after = Some(values(new_base, &e.fields));
                            w.base = Some(new_base.clone());
                            self.audit(name, e).await?;
                            self.notify_ids(name, a, Some(w.ado.id), Some(&w.clickup.id), Ok(()));
                        }
                        Err(e) => {
                            self.audit_failed(
                                name,
                                cycle_id,
                                Some(link),
                                Side::ClickUp,
                                clickup_id.clone(),
                                AuditAction::Update,
                                clickup_patch_fields(patch),
                                &e.to_string(),
                            )
                            .await?;
                            self.fail(
                                name,
                                a,
                                out,
                                ItemRef::ClickUp(clickup_id.clone()),
                                e.to_string(),
                            );
                            return Ok(false);
                        }
                    }
                }
                Action::Rebase { base, .. } => {
                    let Some(link) = w.link else { return Ok(false) };
                    self.store_base(name, link, base, w.ado.rev, w.clickup.date_updated)
                        .await?;
                    w.base = Some(base.clone());
                    self.notify_ids(name, a, Some(w.ado.id), Some(&w.clickup.id), Ok(()));
                }
                Action::RecordConflict {
                    conflict,
                    detected_at,
                    ..
                } => {
                    let Some(link) = w.link else { return Ok(false) };
                    self.record_conflict(name, link, conflict, *detected_at)
                        .await?;
                    // The base stays (the field is held); the markers move on, so the link
                    // is quiet until someone edits it again.
                    if let Some(b) = &w.base {
                        self.store_base(name, link, b, w.ado.rev, w.clickup.date_updated)
                            .await?;
                    }
                    out.tally.conflicts += 1;
                    self.notify_ids(name, a, Some(w.ado.id), Some(&w.clickup.id), Ok(()));
                }
                Action::Unlink { link, reason } => {
                    self.unlink(name, *link, reason, cycle_id, out).await?;
                    self.notify_ids(name, a, Some(w.ado.id), Some(&w.clickup.id), Ok(()));
                }
                Action::CreateInAdo { .. } | Action::CreateInClickUp { .. } => {}
            }
        }
        if linked_now {
            self.repair_backlinks(name, w).await;
        }
        Ok(true)
    }

    /// Plans one link again with its fresh records and applies the result (once: a second
    /// concurrent edit leaves the link for the next cycle).
    pub(super) async fn replan(
        &self,
        pair: &PairConfig,
        meta: &PairMeta,
        obs: &Observation,
        w: &mut LinkWork,
        cycle_id: Option<CycleId>,
        out: &mut GroupOutcome,
    ) -> Result<bool, EngineError> {
        let (Some(link), Some(base)) = (w.link, w.base.clone()) else {
            return Ok(false);
        };
        tracing::info!(pair = %pair.name, link, "item changed during the sync; merging again");
        let mut index = obs.index.clone();
        index.insert(link, w.ado.id, w.clickup.id.clone());
        let snap = LinkSnapshot {
            link,
            ado_id: w.ado.id,
            clickup_id: w.clickup.id.clone(),
            base,
            ado_rev: w.ado.rev,
            clickup_date_updated: w.clickup.date_updated,
        };
        let mut users = meta.users.clone();
        users.ado_unknown = lock(&self.unknown_ado_users).clone();
        let plan = plan::plan(&PlanInput {
            pair: &pair.name,
            links: std::slice::from_ref(&snap),
            ado_records: std::slice::from_ref(&w.ado),
            clickup_records: std::slice::from_ref(&w.clickup),
            link_index: &index,
            mapping: &pair.mapping,
            context: &meta.context,
            users: &users,
            limits: plan::Limits {
                force: true,
                ..plan::Limits::default()
            },
            scope: ScopeCounts::default(),
            now: Utc::now(),
        })?;
        let actions: Vec<&Action> = plan.actions.iter().collect();
        Box::pin(self.apply_link_actions(pair, meta, obs, &actions, w, false, cycle_id, out)).await
    }

    /// After two existing items were linked by one side's marker, give the other side its
    /// marker too (best effort: the link itself is already recorded).
    pub(super) async fn repair_backlinks(&self, pair: &str, w: &mut LinkWork) {
        if !w.ado.hyperlinks.iter().any(|u| u == &w.clickup.url) && !w.clickup.url.is_empty() {
            let _p = self.ado_slots.acquire().await;
            match self
                .ado
                .add_hyperlink(w.ado.id, w.ado.rev, &w.clickup.url)
                .await
            {
                Ok(r) => w.ado.rev = r.rev,
                Err(e) => tracing::warn!(pair, error = %e, "could not add the back-link to ADO"),
            }
        }
        if self.clickup.backlink_field_id().is_some()
            && w.clickup.backlink.as_deref() != Some(w.ado.web_url.as_str())
        {
            let _p = self.clickup_slots.acquire().await;
            match self
                .clickup
                .set_backlink(&w.clickup.id, &w.ado.web_url)
                .await
            {
                Ok(t) => w.clickup.date_updated = t.date_updated,
                Err(e) => {
                    tracing::warn!(pair, error = %e, "could not set the back-link in ClickUp")
                }
            }
        }
    }

    /// A link with one side (or both) gone: the mirror writes, then the unlink.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn apply_vanished(
        &self,
        pair: &PairConfig,
        link: LinkId,
        ado_id: AdoId,
        cu_id: &str,
        actions: &[&Action],
        ado: Option<&AdoRecord>,
        cu: Option<&ClickUpRecord>,
        cycle_id: Option<CycleId>,
        out: &mut GroupOutcome,
    ) -> Result<(), EngineError> {
        let name = pair.name.as_str();
        for a in actions.iter().copied() {
            match a {
                Action::UpdateAdo {
                    expected_rev,
                    patch,
                    ..
                } if ado.is_some() => {
                    if let Err(e) = self.ado_update(ado_id, *expected_rev, patch).await {
                        self.fail(name, a, out, ItemRef::Ado(ado_id), e.to_string());
                        return Ok(());
                    }
                    out.tally.updated_ado += 1;
                    let e = Self::audit_entry(
                        name,
                        cycle_id,
                        Some(link),
                        Side::Ado,
                        ado_id.to_string(),
                        AuditAction::Mirror,
                        ado_patch_fields(patch),
                    );
                    self.audit(name, e).await?;
                    self.notify(name, a, Ok(()));
                }
                Action::UpdateClickUp { patch, .. } if cu.is_some() => {
                    let r = {
                        let _p = self.clickup_slots.acquire().await;
                        self.clickup.update_task(cu_id, patch).await
                    };
                    if let Err(e) = r {
                        self.fail(
                            name,
                            a,
                            out,
                            ItemRef::ClickUp(cu_id.to_string()),
                            e.to_string(),
                        );
                        return Ok(());
                    }
                    out.tally.updated_clickup += 1;
                    let e = Self::audit_entry(
                        name,
                        cycle_id,
                        Some(link),
                        Side::ClickUp,
                        cu_id.to_string(),
                        AuditAction::Mirror,
                        clickup_patch_fields(patch),
                    );
                    self.audit(name, e).await?;
                    self.notify(name, a, Ok(()));
                }
                Action::Unlink { link, reason } => {
                    self.unlink(name, *link, reason, cycle_id, out).await?;
                    self.notify(name, a, Ok(()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub(super) async fn unlink(
        &self,
        pair: &str,
        link: LinkId,
        reason: &str,
        cycle_id: Option<CycleId>,
        out: &mut GroupOutcome,
    ) -> Result<(), EngineError> {
        let why = reason.to_string();
        let l = self
            .db(pair, move |db| db.unlink(link, &why, Utc::now()))
            .await?;
        out.tally.unlinked += 1;
        let mut e = Self::audit_entry(
            pair,
            cycle_id,
            Some(link),
            Side::Ado,
            l.ado_id.to_string(),
            AuditAction::Unlink,
            vec![],
        );
        e.side = None;
        e.detail = Some(reason.to_string());
        self.audit(pair, e).await
    }

    pub(super) async fn store_base(
        &self,
        pair: &str,
        link: LinkId,
        base: &Item,
        ado_rev: i64,
        clickup_updated: i64,
    ) -> Result<(), EngineError> {
        let base = base.clone();
        self.db(pair, move |db| {
            db.store_base(link, &base, ado_rev, clickup_updated, Utc::now())
        })
        .await
    }

    pub(super) async fn record_conflict(
        &self,
        pair: &str,
        link: LinkId,
        c: &MergeConflict,
        at: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let values = ConflictValues {
            base: c.base.clone(),
            ado: c.ado.clone(),
            clickup: c.clickup.clone(),
        };
        let field = c.field;
        tracing::info!(pair, link, %field, "conflict recorded");
        self.db(pair, move |db| {
            db.upsert_conflict(link, field, &values, at).map(|_| ())
        })
        .await
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn audit_failed(
        &self,
        pair: &str,
        cycle_id: Option<CycleId>,
        link: Option<LinkId>,
        side: Side,
        item: String,
        action: AuditAction,
        fields: Vec<Field>,
        error: &str,
    ) -> Result<(), EngineError> {
        let mut e = Self::audit_entry(pair, cycle_id, link, side, item, action, fields);
        e.outcome = AuditOutcome::Failed;
        e.detail = Some(error.to_string());
        self.audit(pair, e).await
    }

    /// Whether a task as ClickUp answered after a write shows `item` in every synced field it
    /// reliably carries (the answer to Update Task need not carry the description; parents
    /// are compared by the planner).
    pub(super) fn clickup_shows(
        &self,
        pair: &PairConfig,
        meta: &PairMeta,
        rec: &ClickUpRecord,
        item: &Item,
    ) -> bool {
        let mut users = meta.users.clone();
        users.ado_unknown = lock(&self.unknown_ado_users).clone();
        let m = Mapper::new(&pair.mapping, &meta.context, &users);
        let mut issues = Vec::new();
        let cur = m.clickup_to_item(rec, item.parent, &mut issues);
        [
            Field::Title,
            Field::Status,
            Field::Assignees,
            Field::Tags,
            Field::Priority,
            Field::Due,
        ]
        .into_iter()
        .all(|f| m.clickup_same(f, item, &cur))
    }

    /// An ADO update; an assignee the service does not know is dropped (and remembered, so
    /// it is not tried again) rather than failing the whole write.
    pub(super) async fn ado_update(
        &self,
        id: AdoId,
        rev: i64,
        patch: &AdoPatch,
    ) -> Result<AdoRecord, ApiError> {
        let first = {
            let _p = self.ado_slots.acquire().await;
            self.ado.update(id, rev, patch).await
        };
        match first {
            Err(e) if self.learn_unknown_identity(&e, patch.assigned_to.as_ref()) => {
                let mut p = patch.clone();
                p.assigned_to = None;
                if p.is_empty() {
                    let _p = self.ado_slots.acquire().await;
                    return self.ado.get(id).await;
                }
                let _p = self.ado_slots.acquire().await;
                self.ado.update(id, rev, &p).await
            }
            other => other,
        }
    }

    /// Whether `e` refused `assigned` as an unknown identity (which is then remembered).
    pub(super) fn learn_unknown_identity(
        &self,
        e: &ApiError,
        assigned: Option<&Option<String>>,
    ) -> bool {
        let ApiError::Validation { message, .. } = e else {
            return false;
        };
        let Some(Some(email)) = assigned else {
            return false;
        };
        if !message.to_lowercase().contains("identity") {
            return false;
        }
        tracing::warn!(%email, "ADO does not know this user; it is left unassigned in ADO");
        lock(&self.unknown_ado_users).insert(email.to_lowercase());
        true
    }
}
