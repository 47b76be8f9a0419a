//! The two epoch files of a quorum member (`acceptedEpoch`, `currentEpoch` in the data
//! directory, as ZooKeeper keeps them): written atomically and durably.

use std::io::Write;
use std::path::Path;

fn read_one(dir: &Path, name: &str) -> std::io::Result<u32> {
    match std::fs::read_to_string(dir.join(name)) {
        Ok(s) => s.trim().parse::<u32>().map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", dir.join(name).display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Reads (accepted, current); missing files read as 0.
///
/// # Errors
/// Unreadable or malformed files.
pub fn read(dir: &Path) -> std::io::Result<(u32, u32)> {
    Ok((
        read_one(dir, "acceptedEpoch")?,
        read_one(dir, "currentEpoch")?,
    ))
}

fn write_one(dir: &Path, name: &str, v: u32) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(v.to_string().as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    Ok(())
}

/// Writes both epochs durably (each file replaced atomically, then the directory synced).
///
/// # Errors
/// IO errors.
pub fn write(dir: &Path, accepted: u32, current: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    write_one(dir, "acceptedEpoch", accepted)?;
    write_one(dir, "currentEpoch", current)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #[test]
    fn epochs_round_trip_and_default_to_zero() {
        let dir = std::env::temp_dir().join(format!("corral-epochs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(super::read(&dir).unwrap(), (0, 0));
        super::write(&dir, 5, 4).unwrap();
        assert_eq!(super::read(&dir).unwrap(), (5, 4));
        std::fs::write(dir.join("currentEpoch"), "x").unwrap();
        assert!(super::read(&dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
