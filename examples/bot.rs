//! A bot-shaped use of reprise: one tokio task per guild mutates its session through a shared
//! `Reprise` handle; the bot process is killed with SIGKILL mid-stream; a new process restores
//! every guild and shows what it would send back to Lavalink.
//!
//! ```sh
//! cargo run --release --example bot            # uses ./reprise-example-bot
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use reprise::session::Workload;
use reprise::{Config, GuildId, Reprise};

const GUILDS: u64 = 8;

fn guild(i: u64) -> GuildId {
    GuildId(700_000_000_000_000_000 + i)
}

/// The bot: a task per guild, each playing a realistic session, printing `guild seq` for every
/// acknowledged (fsynced) event.
async fn bot(dir: &str) -> Result<(), reprise::Error> {
    let reprise = Reprise::open(dir, Config::default()).await?;
    let mut tasks = Vec::new();
    for i in 0..GUILDS {
        let reprise = reprise.clone();
        tasks.push(tokio::spawn(async move {
            let mut workload = Workload::new(i);
            loop {
                let state = reprise.state(guild(i)).await?;
                let event = workload.next_event(&state.state);
                let seq = reprise.append(guild(i), event).await?;
                println!("{} {seq}", guild(i).0);
            }
            #[allow(unreachable_code)]
            Ok::<(), reprise::Error>(())
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// After the crash: restore every guild and print what the bot would resume.
async fn restore(dir: &str, acked: &HashMap<u64, u64>) -> Result<(), reprise::Error> {
    let reprise = Reprise::open(dir, Config::default()).await?;
    for i in 0..GUILDS {
        let s = reprise.state(guild(i)).await?;
        let acknowledged = acked.get(&guild(i).0).copied().unwrap_or(0);
        assert!(s.seq >= acknowledged, "an acknowledged event was lost");
        let playing = s
            .state
            .queue
            .current
            .as_ref()
            .map_or("nothing".to_string(), |e| format!("{:?}", e.track.title()));
        println!(
            "guild {}: seq {} (acknowledged {}), volume {}, {} at {} ms, {} upcoming, paused {}",
            s.guild,
            s.seq,
            acknowledged,
            s.state.player.volume,
            playing,
            s.state.player.position_ms,
            s.state.queue.upcoming.len(),
            s.state.player.paused,
        );
    }
    reprise.shutdown().await
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Runtime::new()?;
    if let Some(dir) = args.iter().skip_while(|a| *a != "--child").nth(1) {
        return Ok(runtime.block_on(bot(dir))?);
    }
    let dir = "./reprise-example-bot";
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--child", dir])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut acked: HashMap<u64, u64> = HashMap::new();
    let lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let mut count = 0;
    for line in lines {
        let line = line?;
        let mut it = line.split(' ').map(str::parse::<u64>);
        if let (Some(Ok(g)), Some(Ok(seq))) = (it.next(), it.next()) {
            acked.insert(g, seq);
        }
        count += 1;
        if count == 2_000 {
            child.kill()?; // SIGKILL: no shutdown, no flush
        }
    }
    child.wait()?;
    println!("bot killed after {count} acknowledged events; restoring:");
    runtime.block_on(restore(dir, &acked))?;
    Ok(())
}
