//! Reading one pass's world: the touched links and their bases, both sides' current records,
//! back-link targets and parents' links; quiet links (nothing changed since their base) are
//! left out here.
use super::*;

impl Engine {
    /// Reads everything one pass needs: the touched links, their bases, both sides' current
    /// records, back-link targets and parents' links.
    pub(super) async fn observe(
        &self,
        pair: &PairConfig,
        touch: &Touch,
        resolutions: &[crate::store::Conflict],
    ) -> Result<Observation, EngineError> {
        let mut obs = Observation::default();
        let name = pair.name.clone();
        let api = Self::api(&pair.name);

        // Links touched by a changed record on either side (or named by a resolution).
        let ado_ids: Vec<AdoId> = touch.ado_ids.iter().copied().collect();
        let mut cu_ids: Vec<ClickUpId> = touch.clickup_known.iter().map(|t| t.id.clone()).collect();
        cu_ids.extend(touch.clickup_ids.iter().cloned());
        let extra: Vec<LinkId> = touch.links.iter().copied().collect();
        let (links, snaps, pending) = {
            let name = name.clone();
            self.db(&pair.name, move |db| {
                let mut links: BTreeMap<LinkId, Link> = BTreeMap::new();
                for l in db.links_by_ado(&name, &ado_ids)? {
                    links.insert(l.id, l);
                }
                for l in db.links_by_clickup(&name, &cu_ids)? {
                    links.insert(l.id, l);
                }
                for l in db.links_by_ids(&extra)? {
                    if l.state == LinkState::Active && l.pair == name {
                        links.insert(l.id, l);
                    }
                }
                let ids: Vec<LinkId> = links.keys().copied().collect();
                let snaps = db.snapshots(&ids)?;
                let pending: Vec<Intent> = db.pending_intents(Some(&name))?;
                Ok((links, snaps, pending))
            })
            .await?
        };
        let pending_sources: HashSet<ItemRef> = pending.iter().map(|i| i.source.clone()).collect();

        // ADO records: linked ones with the mapped fields, new ones with relations (their
        // back-link marker lives there).
        let (sweep_ado, sweep_cu) = match &touch.sweep {
            Some((a, c)) => (Some(a), Some(c)),
            None => (None, None),
        };
        let mut links = links;
        let linked_ado: BTreeSet<AdoId> = links.values().map(|l| l.ado_id).collect();
        // A link whose both sides still carry the change markers stored with its base (our
        // own writes coming back through the overlap window, mostly) needs no planning, and
        // its ClickUp task no read. Sweeps look at everything.
        let sweeping = touch.sweep.is_some();
        let forced = |l: &Link| {
            touch.links.contains(&l.id)
                || touch.forced_ado.contains(&l.ado_id)
                || touch.clickup_ids.contains(&l.clickup_id)
        };
        let polled: HashMap<&str, i64> = touch
            .clickup_known
            .iter()
            .map(|t| (t.id.as_str(), t.date_updated))
            .collect();
        let cu_quiet = |l: &Link| match polled.get(l.clickup_id.as_str()) {
            None => true,
            Some(d) => snaps
                .get(&l.id)
                .is_some_and(|s| s.clickup_date_updated == *d),
        };
        let to_read_linked: Vec<AdoId> = links
            .values()
            .filter(|l| sweep_ado.is_none_or(|s| s.contains(&l.ado_id)))
            .filter(|l| sweeping || forced(l) || touch.ado_ids.contains(&l.ado_id) || !cu_quiet(l))
            .map(|l| l.ado_id)
            .collect();
        let read_linked: HashSet<AdoId> = to_read_linked.iter().copied().collect();
        let to_read_new: Vec<AdoId> = touch
            .ado_ids
            .iter()
            .copied()
            .filter(|id| !linked_ado.contains(id))
            // A sweep creates counterparts for items in scope only (a retry may name one
            // that has moved out).
            .filter(|id| sweep_ado.is_none_or(|s| s.contains(id)))
            .collect();
        let mut ado_failed: HashSet<AdoId> = HashSet::new();
        for (ids, relations) in [(to_read_linked, false), (to_read_new, true)] {
            if ids.is_empty() {
                continue;
            }
            let slots = {
                let _p = self.ado_slots.acquire().await;
                self.ado.read_batch(&ids, relations).await.map_err(&api)?
            };
            for (id, slot) in ids.iter().zip(slots) {
                match slot {
                    AdoSlot::Found(r) => {
                        obs.reads += 1;
                        obs.ado.insert(*id, r);
                    }
                    AdoSlot::Missing => {}
                    AdoSlot::Malformed(e) => {
                        ado_failed.insert(*id);
                        obs.failures.push(ItemFailure {
                            item: ItemRef::Ado(*id),
                            error: e.to_string(),
                        });
                    }
                }
            }
        }

        if !sweeping {
            let quiet: Vec<LinkId> = links
                .values()
                .filter(|l| !forced(l) && cu_quiet(l))
                .filter(|l| match obs.ado.get(&l.ado_id) {
                    Some(r) => snaps.get(&l.id).is_some_and(|s| s.ado_rev == r.rev),
                    // Not read: not changed since the cursor. Read and missing: gone.
                    None => !read_linked.contains(&l.ado_id) && !ado_failed.contains(&l.ado_id),
                })
                .map(|l| l.id)
                .collect();
            for id in quiet {
                if let Some(l) = links.remove(&id) {
                    obs.ado.remove(&l.ado_id);
                    obs.quiet_clickup.insert(l.clickup_id);
                }
            }
        }

        // ClickUp records: the polled ones, plus reads of the counterparts not polled.
        for t in &touch.clickup_known {
            obs.reads += 1;
            if !obs.quiet_clickup.contains(&t.id) {
                obs.clickup.insert(t.id.clone(), t.clone());
            }
        }
        let mut to_get: BTreeSet<ClickUpId> = touch.clickup_ids.clone();
        for l in links.values() {
            if !obs.clickup.contains_key(&l.clickup_id) {
                to_get.insert(l.clickup_id.clone());
            }
        }
        let mut cu_failed: HashSet<ClickUpId> = HashSet::new();
        let got = self.get_tasks(to_get.into_iter().collect()).await;
        for (id, r) in got {
            match r {
                Ok(t) => {
                    obs.reads += 1;
                    if pair.clickup.list_ids.contains(&t.list_id) {
                        obs.clickup.insert(id, t);
                    }
                    // Else it moved to a list outside the pair: out of scope, as if gone.
                }
                Err(ApiError::NotFound { .. }) => {}
                Err(e) => {
                    cu_failed.insert(id.clone());
                    obs.failures.push(ItemFailure {
                        item: ItemRef::ClickUp(id),
                        error: e.to_string(),
                    });
                }
            }
        }

        // Back-link targets of new items that were not read yet.
        let linked_cu: BTreeSet<ClickUpId> = links.values().map(|l| l.clickup_id.clone()).collect();
        let mut want_cu: BTreeSet<ClickUpId> = BTreeSet::new();
        for r in obs.ado.values() {
            if linked_ado.contains(&r.id) {
                continue;
            }
            if let Some(t) = backlink_target_clickup(r) {
                if !obs.clickup.contains_key(&t) && !linked_cu.contains(&t) {
                    want_cu.insert(t);
                }
            }
        }
        let mut want_ado: BTreeSet<AdoId> = BTreeSet::new();
        for r in obs.clickup.values() {
            if linked_cu.contains(&r.id) {
                continue;
            }
            if let Some(a) = backlink_target_ado(r) {
                if !obs.ado.contains_key(&a) && !linked_ado.contains(&a) {
                    want_ado.insert(a);
                }
            }
        }
        for (id, r) in self.get_tasks(want_cu.into_iter().collect()).await {
            if let Ok(t) = r {
                obs.reads += 1;
                if pair.clickup.list_ids.contains(&t.list_id) {
                    obs.clickup.insert(id, t);
                }
            }
        }
        if !want_ado.is_empty() {
            let ids: Vec<AdoId> = want_ado.into_iter().collect();
            let slots = {
                let _p = self.ado_slots.acquire().await;
                self.ado.read_batch(&ids, true).await.map_err(&api)?
            };
            for (id, slot) in ids.iter().zip(slots) {
                if let AdoSlot::Found(r) = slot {
                    obs.reads += 1;
                    if sweep_ado.is_none_or(|s| s.contains(id)) {
                        obs.ado.insert(*id, r);
                    }
                }
            }
        }

        // Items with a create still pending are not planned again, and links whose record
        // could not be read are left for their retry (an unreadable item is not a deleted one).
        obs.ado
            .retain(|id, _| !pending_sources.contains(&ItemRef::Ado(*id)));
        obs.clickup
            .retain(|id, _| !pending_sources.contains(&ItemRef::ClickUp(id.clone())));
        let mut by_link_res: BTreeMap<LinkId, Vec<crate::store::Conflict>> = BTreeMap::new();
        for c in resolutions {
            by_link_res.entry(c.link_id).or_default().push(c.clone());
        }
        for l in links.values() {
            if ado_failed.contains(&l.ado_id) || cu_failed.contains(&l.clickup_id) {
                obs.ado.remove(&l.ado_id);
                obs.clickup.remove(&l.clickup_id);
                continue;
            }
            let Some(s) = snaps.get(&l.id) else {
                tracing::warn!(link = l.id, "link without a merge base; skipped");
                continue;
            };
            let mut base = s.item.clone();
            if let Some(res) = by_link_res.get(&l.id) {
                for c in res {
                    // Rewriting the base to the losing side's value makes the merge carry
                    // the winner over, as an ordinary one-sided edit.
                    let loser = match c.resolution {
                        Some(Resolution::TakeAdo) => &c.values.clickup,
                        Some(Resolution::TakeClickUp) => &c.values.ado,
                        _ => continue,
                    };
                    if let Err(e) = set_field_value(&mut base, c.field, loser) {
                        tracing::warn!(conflict = c.id, error = %e, "resolution not applied");
                    }
                }
                obs.resolutions.insert(l.id, res.clone());
            }
            obs.links.push(LinkSnapshot {
                link: l.id,
                ado_id: l.ado_id,
                clickup_id: l.clickup_id.clone(),
                base,
                ado_rev: s.ado_rev,
                clickup_date_updated: s.clickup_date_updated,
            });
        }

        // The link index: the touched links, the links of every parent and back-link target
        // the records name (or, in a sweep, every link of the pair).
        let mut index_links: Vec<Link> = links.values().cloned().collect();
        if touch.sweep.is_none() {
            let mut parent_ado: Vec<AdoId> = obs.ado.values().filter_map(|r| r.parent).collect();
            parent_ado.extend(obs.clickup.values().filter_map(backlink_target_ado));
            let mut parent_cu: Vec<ClickUpId> = obs
                .clickup
                .values()
                .filter_map(|r| r.parent.clone())
                .collect();
            parent_cu.extend(obs.ado.values().filter_map(backlink_target_clickup));
            let base_parents: Vec<LinkId> =
                obs.links.iter().filter_map(|s| s.base.parent).collect();
            let name = name.clone();
            let more = self
                .db(&pair.name, move |db| {
                    let mut v = db.links_by_ado(&name, &parent_ado)?;
                    v.extend(db.links_by_clickup(&name, &parent_cu)?);
                    v.extend(
                        db.links_by_ids(&base_parents)?
                            .into_iter()
                            .filter(|l| l.state == LinkState::Active),
                    );
                    Ok(v)
                })
                .await?;
            index_links.extend(more);
            obs.index = LinkIndex::new(
                index_links
                    .iter()
                    .map(|l| (l.id, l.ado_id, l.clickup_id.clone())),
            );
        } else {
            obs.index = LinkIndex::new(
                index_links
                    .iter()
                    .map(|l| (l.id, l.ado_id, l.clickup_id.clone())),
            );
            if let (Some(a), Some(c)) = (sweep_ado, sweep_cu) {
                obs.scope = ScopeCounts {
                    ado_in_scope: Some(a.len()),
                    clickup_in_scope: Some(c.len()),
                };
            }
        }
        Ok(obs)
    }

    /// Reads tasks one by one (ClickUp has no batch read), a few at a time.
    pub(super) async fn get_tasks(
        &self,
        ids: Vec<ClickUpId>,
    ) -> Vec<(ClickUpId, Result<ClickUpRecord, ApiError>)> {
        futures::stream::iter(ids)
            .map(|id| async move {
                let _p = self.clickup_slots.acquire().await;
                let r = self.clickup.get_task(&id).await;
                (id, r)
            })
            .buffer_unordered(self.opts.clickup_concurrency.max(1))
            .collect()
            .await
    }
}
