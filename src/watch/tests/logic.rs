//! The pure debounce and compare logic, with time passed in.

use std::time::Instant;

use super::*;

#[test]
fn idle_debouncer_arms_nothing() {
    let mut d = Debouncer::new(500 * MS);
    assert_eq!(d.poll_timeout(), None);
    assert!(!d.due(Instant::now() + Duration::from_secs(3600)));
}

#[test]
fn each_event_pushes_the_deadline_up_to_the_cap() {
    let t0 = Instant::now();
    let mut d = Debouncer::new(500 * MS);
    d.event(t0);
    assert_eq!(d.poll_timeout(), Some(t0 + 500 * MS));
    d.event(t0 + 300 * MS);
    assert_eq!(d.poll_timeout(), Some(t0 + 800 * MS));
    assert!(!d.due(t0 + 799 * MS));
    // A writer that never pauses: the look still comes at the cap.
    for i in 0..200 {
        d.event(t0 + i * 40 * MS);
    }
    assert_eq!(d.poll_timeout(), Some(t0 + 500 * MS * MAX_WAIT_FACTOR));
    assert!(d.due(t0 + 5000 * MS));
    assert_eq!(d.poll_timeout(), None, "disarmed after firing");
    // The next burst starts its own cap.
    d.event(t0 + 6000 * MS);
    assert_eq!(d.poll_timeout(), Some(t0 + 6500 * MS));
}

#[test]
fn zero_debounce_is_due_at_once() {
    let t0 = Instant::now();
    let mut d = Debouncer::new(Duration::ZERO);
    d.event(t0);
    assert!(d.due(t0));
}

fn content(h: u64) -> Snapshot {
    Snapshot::Content(h)
}

fn gone() -> Snapshot {
    Snapshot::Missing("No such file or directory (os error 2)".into())
}

#[test]
fn compare_reports_changes_gone_and_back() {
    let a = PathBuf::from("/x/a");
    let b = PathBuf::from("/x/b");
    let mut tracked = vec![
        Tracked::new(a.clone(), &content(1)),
        Tracked::new(b.clone(), &content(2)),
    ];
    let mut look = |seen: [Snapshot; 2]| {
        compare(&mut tracked, |p| {
            if *p == a {
                seen[0].clone()
            } else {
                seen[1].clone()
            }
        })
    };
    assert_eq!(
        look([content(1), content(2)]),
        vec![],
        "same contents: nothing"
    );
    assert_eq!(
        look([content(3), content(2)]),
        vec![WatchEvent::Changed(vec![a.clone()])]
    );
    assert_eq!(
        look([gone(), content(4)]),
        vec![
            WatchEvent::Gone {
                path: a.clone(),
                why: "No such file or directory (os error 2)".into()
            },
            WatchEvent::Changed(vec![b.clone()])
        ]
    );
    assert_eq!(look([gone(), content(4)]), vec![], "still gone: said once");
    assert_eq!(
        look([content(3), content(4)]),
        vec![WatchEvent::Back(a.clone())],
        "back as it was: no change"
    );
    assert_eq!(look([gone(), content(4)]).len(), 1);
    assert_eq!(
        look([content(9), content(5)]),
        vec![
            WatchEvent::Back(a.clone()),
            WatchEvent::Changed(vec![a.clone(), b.clone()])
        ]
    );
}

#[test]
fn a_file_missing_at_start_counts_as_changed_when_it_arrives() {
    let a = PathBuf::from("/x/a");
    let mut tracked = vec![Tracked::new(a.clone(), &gone())];
    assert_eq!(compare(&mut tracked, |_| gone()), vec![]);
    assert_eq!(
        compare(&mut tracked, |_| content(1)),
        vec![WatchEvent::Back(a.clone()), WatchEvent::Changed(vec![a])]
    );
}

/// Twenty writes within a second, each a real hash of new contents, looked
/// at only when the debouncer says so: at most two changes, the last one
/// with the final contents.
#[test]
fn twenty_writes_in_a_second_give_at_most_two_changes() {
    let a = PathBuf::from("/x/a");
    let t0 = Instant::now();
    let mut d = Debouncer::new(500 * MS);
    let mut tracked = vec![Tracked::new(a.clone(), &content(0))];
    let mut current = 0u64;
    let mut changes = Vec::new();
    let mut now = t0;
    let mut fire = |d: &mut Debouncer, now: Instant, current: u64, changes: &mut Vec<u64>| {
        if d.due(now) && !compare(&mut tracked, |_| content(current)).is_empty() {
            changes.push(current);
        }
    };
    for i in 1..=20u64 {
        now = t0 + (i as u32) * 50 * MS;
        fire(&mut d, now, current, &mut changes);
        current = i;
        d.event(now);
    }
    while let Some(deadline) = d.poll_timeout() {
        now = now.max(deadline);
        fire(&mut d, now, current, &mut changes);
    }
    assert!((1..=2).contains(&changes.len()), "{changes:?}");
    assert_eq!(changes.last(), Some(&20));
}
