// Scratch: times CREATE INDEX statements on a copy of a database. Not committed.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let c = rusqlite::Connection::open(&args[1]).unwrap();
    c.execute_batch("PRAGMA cache_size = -32768; PRAGMA temp_store = FILE;").unwrap();
    for sql in &args[2..] {
        let t = std::time::Instant::now();
        c.execute_batch(sql).unwrap();
        println!("{:.3} s  {sql}", t.elapsed().as_secs_f64());
    }
}
