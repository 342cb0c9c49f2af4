package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"

	_ "modernc.org/sqlite"
)

type sqliteStore struct {
	w       *sql.DB   // one connection: the consumer
	wc      *sql.Conn // pinned, with its prepared statements
	putHist *sql.Stmt
	putProf *sql.Stmt
	putPos  *sql.Stmt

	r        *sql.DB // readers: admin API gets and history scans
	getProf  *sql.Stmt
	scanHist *sql.Stmt
}

var _ store = (*sqliteStore)(nil)

type sqliteConfig struct {
	synchronous  string // OFF, NORMAL or FULL
	cacheKiB     int    // writer page cache
	readCacheKiB int    // per reader connection
	secureDelete bool   // for all writes, not only the erasure
	pageSize     int    // bytes; 0 keeps SQLite's 4096
	autoCkpt     int    // wal_autocheckpoint in pages; 0 keeps SQLite's 1000
	mmapBytes    int64  // mmap_size for all connections; 0 leaves it off
}

var schema = []string{
	`CREATE TABLE IF NOT EXISTS history (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS profile (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS position (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID`,
}

func sqliteDSN(path string, pragmas ...string) string {
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	return "file:" + path + "?" + q.Encode()
}

func openSQLite(path string, cfg sqliteConfig) (*sqliteStore, error) {
	ctx := context.Background()
	secure := "secure_delete(OFF)"
	if cfg.secureDelete {
		secure = "secure_delete(ON)"
	}
	pragmas := []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(" + cfg.synchronous + ")",
		fmt.Sprintf("cache_size(-%d)", cfg.cacheKiB), secure}
	if cfg.pageSize > 0 {
		// page_size only takes effect while the file is empty and not yet
		// in WAL mode, so a first connection sets it and creates the schema.
		init, err := sql.Open("sqlite", sqliteDSN(path, fmt.Sprintf("page_size(%d)", cfg.pageSize)))
		if err != nil {
			return nil, err
		}
		for _, q := range schema {
			if _, err = init.ExecContext(ctx, q); err != nil {
				break
			}
		}
		init.Close()
		if err != nil {
			return nil, fmt.Errorf("schema: %w", err)
		}
	}
	if cfg.autoCkpt > 0 {
		pragmas = append(pragmas, fmt.Sprintf("wal_autocheckpoint(%d)", cfg.autoCkpt))
	}
	mmap := fmt.Sprintf("mmap_size(%d)", cfg.mmapBytes)
	w, err := sql.Open("sqlite", sqliteDSN(path, append(pragmas, mmap)...))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	s := &sqliteStore{w: w}
	for _, q := range schema {
		if _, err := w.ExecContext(ctx, q); err != nil {
			w.Close()
			return nil, fmt.Errorf("schema: %w", err)
		}
	}
	if s.wc, err = w.Conn(ctx); err != nil {
		w.Close()
		return nil, err
	}
	prep := func(dst **sql.Stmt, q string) {
		if err == nil {
			*dst, err = s.wc.PrepareContext(ctx, q)
		}
	}
	prep(&s.putHist, `INSERT OR REPLACE INTO history (k, v) VALUES (?, ?)`)
	prep(&s.putProf, `INSERT INTO profile (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`)
	prep(&s.putPos, `INSERT INTO position (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("prepare: %w", err)
	}

	s.r, err = sql.Open("sqlite", sqliteDSN(path, "busy_timeout(10000)", "query_only(1)",
		fmt.Sprintf("cache_size(-%d)", cfg.readCacheKiB), mmap))
	if err != nil {
		s.Close()
		return nil, err
	}
	s.r.SetMaxOpenConns(2)
	s.r.SetMaxIdleConns(2)
	if s.getProf, err = s.r.PrepareContext(ctx, `SELECT v FROM profile WHERE k = ?`); err == nil {
		s.scanHist, err = s.r.PrepareContext(ctx, `SELECT v FROM history WHERE k >= ? AND k < ? ORDER BY k DESC LIMIT ?`)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("prepare: %w", err)
	}
	return s, nil
}

func (s *sqliteStore) Apply(b *batch) (err error) {
	ctx := context.Background()
	if _, err := s.wc.ExecContext(ctx, "BEGIN"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = s.wc.ExecContext(ctx, "ROLLBACK")
		}
	}()
	for _, part := range []struct {
		st  *sql.Stmt
		kvs []kv
	}{{s.putHist, b.history}, {s.putProf, b.profiles}, {s.putPos, b.positions}} {
		for _, e := range part.kvs {
			if _, err := part.st.ExecContext(ctx, e.k, e.v); err != nil {
				return err
			}
		}
	}
	if _, err := s.wc.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (s *sqliteStore) Profile(key []byte) (bool, error) {
	var v []byte
	err := s.getProf.QueryRow(key).Scan(&v)
	if err == sql.ErrNoRows {
		return false, nil
	}
	sink(v)
	return err == nil, err
}

func (s *sqliteStore) Newest(prefix []byte, n int) (int, error) {
	rows, err := s.scanHist.Query(prefix, prefixEnd(prefix), n)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	got := 0
	var v []byte
	for rows.Next() {
		if err := rows.Scan(&v); err != nil {
			return got, err
		}
		sink(v)
		got++
	}
	return got, rows.Err()
}

func (s *sqliteStore) Erase(prefix, profileKey []byte) error {
	ctx := context.Background()
	// secure_delete is per connection: the consumer's connection does the erase.
	for _, q := range []string{"PRAGMA secure_delete = ON", "BEGIN"} {
		if _, err := s.wc.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	_, err := s.wc.ExecContext(ctx, `DELETE FROM history WHERE k >= ? AND k < ?`, prefix, prefixEnd(prefix))
	if err == nil {
		_, err = s.wc.ExecContext(ctx, `DELETE FROM profile WHERE k = ?`, profileKey)
	}
	if err != nil {
		_, _ = s.wc.ExecContext(ctx, "ROLLBACK")
		return err
	}
	_, err = s.wc.ExecContext(ctx, "COMMIT")
	return err
}

// Reclaim checkpoints the WAL into the database file and truncates it.
func (s *sqliteStore) Reclaim(prefix, profileKey []byte) error {
	var busy, logPages, ckpt int
	err := s.wc.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logPages, &ckpt)
	if err == nil && busy != 0 {
		err = fmt.Errorf("checkpoint busy (log %d, checkpointed %d)", logPages, ckpt)
	}
	return err
}

func (s *sqliteStore) Settle(time.Duration) error { return s.Reclaim(nil, nil) }

func (s *sqliteStore) Stats() string {
	ctx := context.Background()
	var pages, free, size int
	_ = s.wc.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages)
	_ = s.wc.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&free)
	_ = s.wc.QueryRowContext(ctx, "PRAGMA page_size").Scan(&size)
	return fmt.Sprintf("page size %d, pages %d, freelist %d", size, pages, free)
}

func (s *sqliteStore) Close() error {
	for _, st := range []*sql.Stmt{s.putHist, s.putProf, s.putPos, s.getProf, s.scanHist} {
		if st != nil {
			st.Close()
		}
	}
	if s.r != nil {
		s.r.Close()
	}
	if s.wc != nil {
		s.wc.Close()
	}
	return s.w.Close()
}
