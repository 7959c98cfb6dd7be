-- fred 0.2.0: security (shared by both installs; see 20261201000001_fred_lifecycle.sql for the layout).
select 1;
