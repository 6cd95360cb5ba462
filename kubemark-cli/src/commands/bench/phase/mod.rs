//! The phases of one measurement, in order: the nodes join and get Ready ([`ready`]), the
//! controller-manager catches up ([`settle`]), the nodes idle ([`idle`]), pods come and go
//! ([`pods`], with `--pods`) and metrics-server scrapes the nodes ([`scrape`], with `--scrape`).

pub mod idle;
pub mod pods;
pub mod ready;
pub mod scrape;
pub mod settle;
