//! Kubernetes resource quantities as integers: millicores for CPU, bytes (or units) otherwise.

/// Parses a quantity into its value scaled by 1000 (milli-units), which is exact for every
/// quantity a pod spec uses (`100m`, `1.5`, `2Gi`, `500M`, `1e3`).
pub fn parse(q: &str) -> Option<i128> {
    let q = q.trim();
    if q.is_empty() {
        return None;
    }
    let suffixes: [(&str, i128, i128); 13] = [
        ("Ki", 1 << 10, 1),
        ("Mi", 1 << 20, 1),
        ("Gi", 1 << 30, 1),
        ("Ti", 1 << 40, 1),
        ("Pi", 1 << 50, 1),
        ("Ei", 1 << 60, 1),
        ("n", 1, 1_000_000_000),
        ("u", 1, 1_000_000),
        ("m", 1, 1000),
        ("k", 1000, 1),
        ("M", 1_000_000, 1),
        ("G", 1_000_000_000, 1),
        ("T", 1_000_000_000_000, 1),
    ];
    let (number, mul, div) = if let Some((mantissa, exp)) = q.split_once(['e', 'E']) {
        let exp: u32 = exp.parse().ok()?;
        (mantissa, 10i128.checked_pow(exp)?, 1)
    } else {
        suffixes
            .iter()
            .find_map(|(s, m, d)| q.strip_suffix(s).map(|n| (n, *m, *d)))
            .unwrap_or((q, 1, 1))
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 9
    {
        return None;
    }
    let int: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let frac_val: i128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let frac_scale = 10i128.pow(frac.len() as u32);
    // (int + frac/frac_scale) * mul / div * 1000, rounded up as Kubernetes rounds requests.
    // Checked: a quantity may come from free text (an annotation), not only from the API.
    let numer = int
        .checked_mul(frac_scale)?
        .checked_add(frac_val)?
        .checked_mul(mul)?
        .checked_mul(1000)?;
    let denom = frac_scale.checked_mul(div)?;
    Some(numer.checked_add(denom - 1)? / denom)
}

/// Milli-units to a string the API accepts for CPU (`250m`).
pub fn format_milli(milli: i128) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn quantities_scale_to_milli_units() {
        assert_eq!(parse("100m"), Some(100));
        assert_eq!(parse("1"), Some(1000));
        assert_eq!(parse("1.5"), Some(1500));
        assert_eq!(parse("2Gi"), Some(2 * (1 << 30) * 1000));
        assert_eq!(parse("500M"), Some(500_000_000_000));
        assert_eq!(parse("1e3"), Some(1_000_000));
        assert_eq!(parse("4026531840"), Some(4_026_531_840_000));
        assert_eq!(parse("x"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("1.2.3"), None);
        // Too big for the arithmetic: refused, not a panic or a wrapped value.
        assert_eq!(parse("9e37"), None);
        assert_eq!(parse("99999999999999999999999999999999999Ei"), None);
    }
}
