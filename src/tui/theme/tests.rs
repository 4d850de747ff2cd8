//! Unit tests of the themes.

use super::*;

const ALL_SUPPORT: [ColorSupport; 4] = [
    ColorSupport::NoColor,
    ColorSupport::Ansi16,
    ColorSupport::Ansi256,
    ColorSupport::TrueColor,
];

fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |key| {
        pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (*v).to_owned())
    }
}

fn write_user_theme(dir: &Path, name: &str, text: &str) -> PathBuf {
    let themes = dir.join("themes");
    fs::create_dir_all(&themes).unwrap();
    let path = themes.join(format!("{name}.toml"));
    fs::write(&path, text).unwrap();
    path
}

fn colours(style: Style) -> [Option<Color>; 2] {
    [style.fg, style.bg]
}

#[test]
fn role_names_are_unique_and_round_trip() {
    for role in Role::ALL {
        assert_eq!(Role::from_name(role.as_str()), Some(role));
        assert_eq!(Role::ALL[role.index()], role);
    }
    let mut names: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Role::COUNT);
    assert_eq!(Role::from_name("nope"), None);
}

#[test]
fn every_embedded_theme_defines_every_role() {
    for theme in &EMBEDDED {
        let layer = theme.layer().unwrap_or_else(|e| panic!("{e}"));
        for role in Role::ALL {
            assert!(
                layer.styles.contains_key(&role),
                "{} does not define {role}",
                theme.name
            );
        }
        assert!(
            layer.description.is_some(),
            "{} has no description",
            theme.name
        );
    }
}

#[test]
fn every_embedded_theme_loads_in_every_colour_mode() {
    for theme in &EMBEDDED {
        for support in ALL_SUPPORT {
            let loaded = Theme::load(theme.name, None, support)
                .unwrap_or_else(|e| panic!("{} / {support}: {e}", theme.name));
            assert_eq!(loaded.name, theme.name);
            assert_eq!(loaded.support, support);
            for role in Role::ALL {
                for colour in colours(loaded.style(role)).into_iter().flatten() {
                    match support {
                        ColorSupport::NoColor => {
                            panic!("{}: colour left in {role}", theme.name)
                        }
                        ColorSupport::Ansi16 => assert!(
                            !matches!(colour, Color::Rgb(..) | Color::Indexed(_)),
                            "{} {role}: {colour:?} in 16-colour mode",
                            theme.name
                        ),
                        ColorSupport::Ansi256 => assert!(
                            !matches!(colour, Color::Rgb(..)),
                            "{} {role}: {colour:?} in 256-colour mode",
                            theme.name
                        ),
                        ColorSupport::TrueColor => {}
                    }
                }
            }
        }
    }
}

#[test]
fn high_contrast_uses_only_named_colours() {
    let theme = Theme::load("high-contrast", None, ColorSupport::TrueColor).unwrap();
    for role in Role::ALL {
        for colour in colours(theme.style(role)).into_iter().flatten() {
            assert!(
                !matches!(colour, Color::Rgb(..) | Color::Indexed(_)),
                "{role} uses {colour:?}"
            );
        }
    }
}

/// WCAG relative luminance of an sRGB colour.
fn luminance([r, g, b]: [u8; 3]) -> f64 {
    let channel = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.039_28 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
}

fn contrast(a: [u8; 3], b: [u8; 3]) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

fn rgb(colour: Color) -> [u8; 3] {
    match colour {
        Color::Rgb(r, g, b) => [r, g, b],
        other => panic!("expected an RGB colour, got {other:?}"),
    }
}

/// The RGB themes stay legible: text meets WCAG AA (4.5:1) against the
/// background it is drawn on, short status labels 4:1, empty bar parts
/// and cancelled jobs 3:1, and borders 2:1.
#[test]
fn rgb_themes_have_legible_contrast() {
    for (name, background) in [
        ("dark", "#16181d"),
        ("light", "#fafafa"),
        ("catppuccin-mocha", "#1e1e2e"),
        ("gruvbox-dark", "#282828"),
    ] {
        let theme = Theme::load(name, None, ColorSupport::TrueColor).unwrap();
        let Ok(Color::Rgb(r, g, b)) = parse_literal_colour(background) else {
            unreachable!()
        };
        let background = [r, g, b];
        for role in Role::ALL {
            let style = theme.style(role);
            let Some(fg) = style.fg.map(rgb) else {
                continue;
            };
            let on = style.bg.map_or(background, rgb);
            let needed = match role {
                Role::Border => 2.0,
                Role::GaugeFree | Role::ProgressTodo | Role::StatusCancelled => 3.0,
                // Short coloured labels, usually bold (gruvbox's own
                // bright red is 4.3:1 on its background).
                Role::Ok
                | Role::Warn
                | Role::Error
                | Role::Info
                | Role::StatusQueued
                | Role::StatusRunning
                | Role::StatusPaused
                | Role::StatusDone
                | Role::StatusFailed => 4.0,
                _ => 4.5,
            };
            let ratio = contrast(fg, on);
            assert!(
                ratio >= needed,
                "{name} {role}: contrast {ratio:.2} below {needed}"
            );
        }
    }
}

#[test]
fn detection_table() {
    let cases: &[(&[(&str, &str)], ColorSupport)] = &[
        (&[], ColorSupport::Ansi16),
        (&[("TERM", "xterm")], ColorSupport::Ansi16),
        (&[("TERM", "xterm-256color")], ColorSupport::Ansi256),
        (&[("TERM", "tmux-256color")], ColorSupport::Ansi256),
        (
            &[("TERM", "xterm-256color"), ("COLORTERM", "truecolor")],
            ColorSupport::TrueColor,
        ),
        (
            &[("TERM", "xterm"), ("COLORTERM", "24bit")],
            ColorSupport::TrueColor,
        ),
        (
            &[("TERM", "xterm"), ("COLORTERM", "yes")],
            ColorSupport::Ansi16,
        ),
        (&[("TERM", "dumb")], ColorSupport::NoColor),
        (
            &[("TERM", "dumb"), ("COLORTERM", "truecolor")],
            ColorSupport::NoColor,
        ),
        (
            &[("NO_COLOR", "1"), ("COLORTERM", "truecolor")],
            ColorSupport::NoColor,
        ),
        (
            &[("NO_COLOR", ""), ("TERM", "xterm-256color")],
            ColorSupport::Ansi256,
        ),
        (
            &[("NO_COLOR", "1"), ("REELSMITH_COLORS", "truecolor")],
            ColorSupport::NoColor,
        ),
        (
            &[("REELSMITH_COLORS", "truecolor"), ("TERM", "dumb")],
            ColorSupport::TrueColor,
        ),
        (&[("REELSMITH_COLORS", "256")], ColorSupport::Ansi256),
        (
            &[("REELSMITH_COLORS", "16"), ("COLORTERM", "truecolor")],
            ColorSupport::Ansi16,
        ),
        (
            &[("REELSMITH_COLORS", "none"), ("COLORTERM", "truecolor")],
            ColorSupport::NoColor,
        ),
        (
            &[("REELSMITH_COLORS", "bogus"), ("TERM", "xterm-256color")],
            ColorSupport::Ansi256,
        ),
    ];
    for (vars, expected) in cases {
        assert_eq!(ColorSupport::detect(env(vars)), *expected, "env {vars:?}");
    }
}

#[test]
fn colour_support_names_round_trip() {
    for support in ALL_SUPPORT {
        assert_eq!(ColorSupport::from_name(support.as_str()), Some(support));
    }
    assert_eq!(
        ColorSupport::from_name(" TrueColor "),
        Some(ColorSupport::TrueColor)
    );
    assert_eq!(ColorSupport::from_name("lots"), None);
}

#[test]
fn downsampling_examples() {
    let red = Color::Rgb(255, 0, 0);
    assert_eq!(ColorSupport::TrueColor.adapt(red), Some(red));
    assert_eq!(ColorSupport::Ansi256.adapt(red), Some(Color::Indexed(196)));
    // xterm's bright red is exactly #ff0000; its normal red is #cd0000.
    assert_eq!(ColorSupport::Ansi16.adapt(red), Some(Color::LightRed));
    assert_eq!(
        ColorSupport::Ansi16.adapt(Color::Rgb(205, 0, 0)),
        Some(Color::Red)
    );
    assert_eq!(
        ColorSupport::Ansi16.adapt(Color::Rgb(180, 20, 20)),
        Some(Color::Red)
    );
    assert_eq!(ColorSupport::NoColor.adapt(red), None);

    // Gray ramp versus cube.
    assert_eq!(rgb_to_ansi256(0x80, 0x80, 0x80), 244);
    assert_eq!(rgb_to_ansi256(0x08, 0x08, 0x08), 232);
    assert_eq!(rgb_to_ansi256(0xee, 0xee, 0xee), 255);
    assert_eq!(rgb_to_ansi256(0, 0, 0), 16);
    assert_eq!(rgb_to_ansi256(255, 255, 255), 231);
    assert_eq!(rgb_to_ansi256(0x5f, 0x87, 0xaf), 67);
    assert_eq!(rgb_to_ansi256(0x1e, 0x1e, 0x2e), 235);

    // Indexed colours in 16-colour mode.
    assert_eq!(
        ColorSupport::Ansi16.adapt(Color::Indexed(1)),
        Some(Color::Red)
    );
    assert_eq!(
        ColorSupport::Ansi16.adapt(Color::Indexed(196)),
        Some(Color::LightRed)
    );
    assert_eq!(
        ColorSupport::Ansi16.adapt(Color::Indexed(232)),
        Some(Color::Black)
    );
    assert_eq!(
        ColorSupport::Ansi16.adapt(Color::Indexed(255)),
        Some(Color::Gray)
    );
    assert_eq!(
        ColorSupport::Ansi256.adapt(Color::Indexed(42)),
        Some(Color::Indexed(42))
    );
    assert_eq!(
        ColorSupport::Ansi16.adapt(Color::Rgb(0x1e, 0x1e, 0x2e)),
        Some(Color::Black)
    );
    assert_eq!(
        ColorSupport::Ansi16.adapt(Color::Rgb(250, 250, 250)),
        Some(Color::White)
    );

    // Named colours pass through untouched.
    for support in [
        ColorSupport::Ansi16,
        ColorSupport::Ansi256,
        ColorSupport::TrueColor,
    ] {
        for (_, named, _) in ANSI16 {
            assert_eq!(support.adapt(named), Some(named));
        }
        assert_eq!(support.adapt(Color::Reset), Some(Color::Reset));
    }
}

#[test]
fn ansi256_table_matches_xterm() {
    assert_eq!(ansi256_to_rgb(16), [0, 0, 0]);
    assert_eq!(ansi256_to_rgb(196), [255, 0, 0]);
    assert_eq!(ansi256_to_rgb(67), [0x5f, 0x87, 0xaf]);
    assert_eq!(ansi256_to_rgb(244), [128, 128, 128]);
    // Every cube and ramp entry maps back to itself.
    for index in 16..=255u8 {
        let [r, g, b] = ansi256_to_rgb(index);
        assert_eq!(rgb_to_ansi256(r, g, b), index);
    }
}

#[test]
fn literal_colours() {
    assert_eq!(
        parse_literal_colour("#89b4fa"),
        Ok(Color::Rgb(0x89, 0xb4, 0xfa))
    );
    assert_eq!(
        parse_literal_colour("#89B4FA"),
        Ok(Color::Rgb(0x89, 0xb4, 0xfa))
    );
    assert_eq!(parse_literal_colour("indexed:0"), Ok(Color::Indexed(0)));
    assert_eq!(parse_literal_colour("indexed:255"), Ok(Color::Indexed(255)));
    assert_eq!(parse_literal_colour("reset"), Ok(Color::Reset));
    assert_eq!(parse_literal_colour("LightBlue"), Ok(Color::LightBlue));
    assert_eq!(parse_literal_colour("dark_grey"), Ok(Color::DarkGray));
    assert_eq!(parse_literal_colour("gray"), Ok(Color::Gray));
    assert!(parse_literal_colour("indexed:256").is_err());
    assert!(parse_literal_colour("indexed:+1").is_err());
    assert!(parse_literal_colour("#12345").is_err());
    assert!(parse_literal_colour("#+12345").is_err());
    assert!(parse_literal_colour("blurple").is_err());
}

#[test]
fn no_color_strips_colours_and_reverses_background_roles() {
    let theme = Theme::load("dark", None, ColorSupport::NoColor).unwrap();
    for role in Role::ALL {
        let style = theme.style(role);
        assert_eq!(colours(style), [None, None], "{role}");
    }
    let selection = theme.style(Role::Selection);
    assert!(selection.add_modifier.contains(Modifier::REVERSED));
    assert!(
        selection.add_modifier.contains(Modifier::BOLD),
        "modifiers are kept"
    );
    for role in [
        Role::TabActive,
        Role::GaugeReserved,
        Role::GaugeUsed,
        Role::GaugeOther,
        Role::ProgressDone,
    ] {
        assert!(
            theme.style(role).add_modifier.contains(Modifier::REVERSED),
            "{role}"
        );
    }
    for role in [Role::GaugeFree, Role::ProgressTodo] {
        assert_eq!(theme.style(role), Style::new(), "{role}");
    }
    assert!(theme
        .style(Role::Error)
        .add_modifier
        .contains(Modifier::BOLD));
    assert!(theme.style(Role::Dim).add_modifier.contains(Modifier::DIM));
}

#[test]
fn default_dark_is_true_colour_dark() {
    let theme = Theme::default_dark();
    assert_eq!(theme.name, "dark");
    assert_eq!(theme.support, ColorSupport::TrueColor);
    assert_eq!(
        theme.style(Role::Text).fg,
        Some(Color::Rgb(0xd7, 0xda, 0xe0))
    );
    assert_eq!(Theme::default(), theme);
}

#[test]
fn theme_names_include_user_themes() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        theme_names(Some(dir.path())),
        [
            "catppuccin-mocha",
            "dark",
            "gruvbox-dark",
            "high-contrast",
            "light"
        ]
    );
    write_user_theme(dir.path(), "sunset", "");
    write_user_theme(dir.path(), "dark", "");
    fs::write(dir.path().join("themes/notes.txt"), "not a theme").unwrap();
    fs::create_dir(dir.path().join("themes/folder.toml")).unwrap();
    assert_eq!(
        theme_names(Some(dir.path())),
        [
            "catppuccin-mocha",
            "dark",
            "gruvbox-dark",
            "high-contrast",
            "light",
            "sunset"
        ]
    );
    assert_eq!(theme_names(None).len(), EMBEDDED.len());
}

#[test]
fn user_file_overrides_one_role_of_a_builtin_theme() {
    let dir = tempfile::tempdir().unwrap();
    write_user_theme(
        dir.path(),
        "dark",
        "[styles]\nselection = { fg = \"black\", bg = \"#ffcc00\", modifiers = [\"italic\"] }\n",
    );
    let builtin = Theme::default_dark();
    let theme = Theme::load("dark", Some(dir.path()), ColorSupport::TrueColor).unwrap();
    let selection = theme.style(Role::Selection);
    assert_eq!(selection.fg, Some(Color::Black));
    assert_eq!(selection.bg, Some(Color::Rgb(0xff, 0xcc, 0x00)));
    assert_eq!(selection.add_modifier, Modifier::ITALIC);
    for role in Role::ALL.into_iter().filter(|r| *r != Role::Selection) {
        assert_eq!(theme.style(role), builtin.style(role), "{role}");
    }
    assert_eq!(theme.description, builtin.description);
}

#[test]
fn user_palette_override_recolours_builtin_roles() {
    let dir = tempfile::tempdir().unwrap();
    write_user_theme(
        dir.path(),
        "catppuccin-mocha",
        "description = \"mine\"\n[palette]\nlavender = \"#ff00ff\"\n",
    );
    let theme = Theme::load(
        "catppuccin-mocha",
        Some(dir.path()),
        ColorSupport::TrueColor,
    )
    .unwrap();
    assert_eq!(
        theme.style(Role::BorderFocus).fg,
        Some(Color::Rgb(255, 0, 255))
    );
    assert_eq!(theme.style(Role::Title).fg, Some(Color::Rgb(255, 0, 255)));
    assert_eq!(theme.description, "mine");
}

#[test]
fn new_user_theme_inherits_missing_roles_from_dark() {
    let dir = tempfile::tempdir().unwrap();
    write_user_theme(
            dir.path(),
            "sunset",
            "name = \"sunset\"\n[palette]\nsun = \"#ff8800\"\n[styles]\ntitle = { fg = \"sun\" }\nborder = { fg = \"blue\" }\n",
        );
    let dark = Theme::load("dark", None, ColorSupport::Ansi256).unwrap();
    let theme = Theme::load("sunset", Some(dir.path()), ColorSupport::Ansi256).unwrap();
    assert_eq!(theme.name, "sunset");
    assert_eq!(theme.style(Role::Title).fg, Some(Color::Indexed(208)));
    // The palette name "blue" from dark shadows the ANSI colour.
    assert_eq!(theme.style(Role::Border).fg, dark.style(Role::Accent).fg);
    assert_eq!(theme.style(Role::Selection), dark.style(Role::Selection));
}

#[test]
fn unknown_theme_lists_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    write_user_theme(dir.path(), "sunset", "");
    let err = Theme::load("nope", Some(dir.path()), ColorSupport::TrueColor).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, ThemeError::Unknown { .. }));
    for name in [
        "catppuccin-mocha",
        "dark",
        "gruvbox-dark",
        "high-contrast",
        "light",
        "sunset",
    ] {
        assert!(message.contains(name), "{message}");
    }
    assert!(message.contains("\"nope\""), "{message}");
    // Names that would escape the themes folder are never looked up.
    let err = Theme::load("../secrets", Some(dir.path()), ColorSupport::TrueColor).unwrap_err();
    assert!(matches!(err, ThemeError::Unknown { .. }));
}

/// Loads `text` as user theme "mine" and returns the error message.
fn user_error(text: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_user_theme(dir.path(), "mine", text);
    let err = Theme::load("mine", Some(dir.path()), ColorSupport::TrueColor).unwrap_err();
    (err.to_string(), path.display().to_string())
}

#[test]
fn errors_name_file_field_and_choices() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "[styles]\nselection = { fg = \"blurple\" }\n",
            "styles.selection.fg",
            &[
                "\"blurple\"",
                "#rrggbb",
                "indexed:N",
                "lightmagenta",
                "reset",
            ],
        ),
        (
            "[palette]\nhot = \"#ff00\"\n[styles]\ntext = { fg = \"hot\" }\n",
            "palette.hot",
            &["#rrggbb", "darkgray"],
        ),
        (
            "[palette]\nhot = \"#ff0000\"\n[styles]\ntext = { bg = \"cold\" }\n",
            "styles.text.bg",
            &["\"cold\"", "palette name (", "hot", "bg, blue"],
        ),
        (
            "[styles]\nsparkles = { fg = \"red\" }\n",
            "styles.sparkles",
            &["unknown role", "valid roles: text, dim,", "progress_todo"],
        ),
        (
            "[styles]\ntitle = { fg = \"red\", modifiers = [\"blink\"] }\n",
            "styles.title.modifiers",
            &[
                "\"blink\"",
                "bold, dim, italic, underlined, reversed, crossed_out",
            ],
        ),
        (
            "[styles]\ntitle = { fg = \"red\", modifiers = \"bold\" }\n",
            "styles.title.modifiers",
            &["expected a list", "[\"bold\", \"italic\"]"],
        ),
        (
            "[styles]\ntitle = { colour = \"red\" }\n",
            "styles.title.colour",
            &["unknown key", "fg, bg and modifiers"],
        ),
        (
            "[styles]\ntitle = \"red\"\n",
            "styles.title",
            &["expected a table", "fg, bg and modifiers"],
        ),
        (
            "[styles]\ntitle = { fg = 12 }\n",
            "styles.title.fg",
            &["expected a string, found integer"],
        ),
        (
            "colours = 1\n",
            "colours",
            &["name, description, [palette] and [styles]"],
        ),
    ];
    for (text, field, needles) in cases {
        let (message, path) = user_error(text);
        assert!(message.starts_with(&path), "{message}");
        assert!(
            message.contains(&format!(": {field}: ")),
            "{field}: {message}"
        );
        for needle in *needles {
            assert!(
                message.contains(needle),
                "{needle:?} missing from: {message}"
            );
        }
    }
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let (message, path) = user_error("[styles]\ntext = { fg = \"red\"\n");
    assert!(message.starts_with(&path), "{message}");
    assert!(message.contains("line 2"), "{message}");
    assert!(message.contains("a theme file looks like"), "{message}");
}

#[test]
fn unreadable_user_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("themes/odd.toml")).unwrap();
    let err = Theme::load("odd", Some(dir.path()), ColorSupport::TrueColor).unwrap_err();
    assert!(matches!(err, ThemeError::Read { .. }), "{err}");
    assert!(err.to_string().contains("odd.toml"), "{err}");
}
