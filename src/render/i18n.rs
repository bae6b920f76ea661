//! Labels for the contract's codes in the three built-in languages. Templates hold the prose;
//! these tables hold the words a template cannot sensibly spell out per code (what an error kind
//! means and what to do about it, what a bounce class means…). A language without a table
//! (an operator's own `fr` templates) gets the English labels; the codes are always available
//! beside the labels (`kind_code`, `status_code`…) for templates that want their own wording.

/// A language with built-in labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// English (also the labels of any language without a table).
    En,
    /// Russian.
    Ru,
    /// German.
    De,
}

/// The languages of the built-in templates.
pub const BUILTIN_LANGUAGES: [&str; 3] = ["en", "ru", "de"];

type Row = (&'static str, [&'static str; 3]);

fn pick(table: &'static [Row], code: &str, lang: Lang) -> Option<&'static str> {
    table
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, t)| t[lang as usize])
}

impl Lang {
    /// The labels for a language code; English for languages without a table.
    pub fn from_code(code: &str) -> Lang {
        match code {
            "ru" => Lang::Ru,
            "de" => Lang::De,
            _ => Lang::En,
        }
    }

    /// Appended to a value cut at `templates.max_value_chars`.
    pub fn cut_marker(self, rest: usize) -> String {
        match self {
            Lang::En => format!("… [cut: {rest} more characters]"),
            Lang::Ru => format!("… [обрезано: ещё {rest} симв.]"),
            Lang::De => format!("… [gekürzt: {rest} weitere Zeichen]"),
        }
    }

    /// Clause after "The message": what happened to it.
    pub fn message_action(self, code: &str) -> &'static str {
        pick(MESSAGE_ACTION, code, self)
            .unwrap_or_else(|| pick(MESSAGE_ACTION, "UNKNOWN", self).unwrap_or(""))
    }

    /// What was done with one object.
    pub fn object_action(self, code: &str) -> &'static str {
        pick(OBJECT_ACTION, code, self)
            .unwrap_or_else(|| pick(OBJECT_ACTION, "UNKNOWN", self).unwrap_or(""))
    }

    /// The scan module's name.
    pub fn module(self, code: &str) -> &'static str {
        pick(MODULE, code, self).unwrap_or_else(|| pick(MODULE, "UNKNOWN", self).unwrap_or(""))
    }

    /// A scan status in words; an unknown status is shown as its code.
    pub fn status(self, code: &str) -> &str {
        pick(STATUS, code, self).unwrap_or(code)
    }

    /// Title, explanation and advice of a bounce class.
    pub fn bounce_class(self, code: &str) -> (&'static str, &'static str, &'static str) {
        let t = |table: &'static [Row]| {
            pick(table, code, self).unwrap_or_else(|| pick(table, "UNKNOWN", self).unwrap_or(""))
        };
        (t(BOUNCE_TITLE), t(BOUNCE_EXPLAIN), t(BOUNCE_ADVICE))
    }

    /// A bounce recipient's action.
    pub fn recipient_action(self, code: &str) -> &'static str {
        pick(RECIPIENT_ACTION, code, self)
            .unwrap_or_else(|| pick(RECIPIENT_ACTION, "UNKNOWN", self).unwrap_or(""))
    }

    /// An application error group.
    pub fn error_group(self, code: &str) -> &'static str {
        pick(ERROR_GROUP, code, self)
            .unwrap_or_else(|| pick(ERROR_GROUP, "UNKNOWN", self).unwrap_or(""))
    }

    /// New / still active / resolved.
    pub fn error_status(self, code: &str) -> &'static str {
        pick(ERROR_STATUS, code, self).unwrap_or("")
    }

    /// What an application error kind means, and what to do.
    pub fn error_kind(self, code: &str) -> (&'static str, &'static str) {
        let t = |table: &'static [Row]| {
            pick(table, code, self).unwrap_or_else(|| pick(table, "UNKNOWN", self).unwrap_or(""))
        };
        (t(ERROR_KIND), t(ERROR_ADVICE))
    }

    /// How human-oriented templates name a detection on the whole message (`object_label`);
    /// the KSMG macro `%OBJECT_NAME%` says `Message`.
    pub fn message_object(self) -> &'static str {
        match self {
            Lang::En => "the message itself",
            Lang::Ru => "само сообщение",
            Lang::De => "die Nachricht selbst",
        }
    }

    /// A known attribute name in words; others are shown as they are.
    pub fn attribute(self, name: &str) -> &str {
        pick(ATTRIBUTE, name, self).unwrap_or(name)
    }
}

const MESSAGE_ACTION: &[Row] = &[
    (
        "SKIPPED",
        [
            "was delivered unchanged",
            "доставлено без изменений",
            "wurde unverändert zugestellt",
        ],
    ),
    (
        "DISINFECTED",
        [
            "was disinfected and delivered",
            "вылечено и доставлено",
            "wurde desinfiziert und zugestellt",
        ],
    ),
    (
        "ATTACHMENT_DELETED",
        [
            "was delivered without the dangerous attachments",
            "доставлено без опасных вложений",
            "wurde ohne die gefährlichen Anhänge zugestellt",
        ],
    ),
    (
        "DELETED",
        [
            "was deleted and not delivered",
            "удалено и не доставлено",
            "wurde gelöscht und nicht zugestellt",
        ],
    ),
    (
        "REJECTED",
        [
            "was rejected and not delivered",
            "отклонено и не доставлено",
            "wurde abgewiesen und nicht zugestellt",
        ],
    ),
    (
        "UNKNOWN",
        [
            "was processed (the action is unknown to this version)",
            "обработано (действие неизвестно этой версии)",
            "wurde verarbeitet (die Aktion ist dieser Version unbekannt)",
        ],
    ),
];

const OBJECT_ACTION: &[Row] = &[
    ("BLOCKED", ["blocked", "заблокирован", "blockiert"]),
    (
        "NOT_BLOCKED",
        ["not blocked", "не заблокирован", "nicht blockiert"],
    ),
    ("DISINFECTED", ["disinfected", "вылечен", "desinfiziert"]),
    ("DELETED", ["deleted", "удалён", "gelöscht"]),
    ("SKIPPED", ["skipped", "пропущен", "übersprungen"]),
    ("UNKNOWN", ["unknown", "неизвестно", "unbekannt"]),
];

const MODULE: &[Row] = &[
    ("ANTI_VIRUS", ["Anti-Virus", "Антивирус", "Anti-Virus"]),
    ("ANTI_SPAM", ["Anti-Spam", "Анти-Спам", "Anti-Spam"]),
    (
        "ANTI_PHISHING",
        ["Anti-Phishing", "Анти-Фишинг", "Anti-Phishing"],
    ),
    (
        "CONTENT_FILTERING",
        ["Content filtering", "Фильтрация контента", "Inhaltsfilter"],
    ),
    (
        "LINK_SCANNING",
        ["Link scanning", "Проверка ссылок", "Link-Prüfung"],
    ),
    (
        "MAIL_SENDER_AUTH",
        [
            "Sender authentication",
            "Проверка подлинности отправителя",
            "Absenderauthentifizierung",
        ],
    ),
    (
        "KATA",
        [
            "KATA (targeted attack analysis)",
            "KATA (анализ целевых атак)",
            "KATA (Analyse gezielter Angriffe)",
        ],
    ),
    (
        "UNKNOWN",
        ["unknown module", "неизвестный модуль", "unbekanntes Modul"],
    ),
];

const STATUS: &[Row] = &[
    ("INFECTED", ["infected", "заражён", "infiziert"]),
    (
        "PROBABLY_INFECTED",
        [
            "probably infected",
            "возможно заражён",
            "möglicherweise infiziert",
        ],
    ),
    (
        "ENCRYPTED",
        [
            "encrypted, could not be scanned",
            "зашифрован, проверка невозможна",
            "verschlüsselt, nicht prüfbar",
        ],
    ),
    (
        "SCAN_ERROR",
        ["scan error", "ошибка проверки", "Prüffehler"],
    ),
    (
        "MACROS",
        ["contains macros", "содержит макросы", "enthält Makros"],
    ),
    (
        "LEGIT_EXPLOITABLE",
        [
            "legitimate software that can be misused",
            "легальная программа, которую могут использовать злоумышленники",
            "legitime Software, die missbraucht werden kann",
        ],
    ),
    ("SPAM", ["spam", "спам", "Spam"]),
    (
        "PROBABLE_SPAM",
        ["probable spam", "возможно спам", "wahrscheinlich Spam"],
    ),
    (
        "MASS_MAIL",
        ["mass mailing", "массовая рассылка", "Massen-E-Mail"],
    ),
    ("PHISHING", ["phishing", "фишинг", "Phishing"]),
    (
        "MALICIOUS_LINK",
        ["malicious link", "вредоносная ссылка", "schädlicher Link"],
    ),
    (
        "FILTERED_NAME",
        [
            "forbidden file name",
            "запрещённое имя файла",
            "unzulässiger Dateiname",
        ],
    ),
    (
        "FILTERED_TYPE",
        [
            "forbidden file type",
            "запрещённый тип файла",
            "unzulässiger Dateityp",
        ],
    ),
    (
        "FILTERED_SIZE",
        ["file too large", "файл слишком большой", "Datei zu groß"],
    ),
    (
        "AUTH_FAILED",
        [
            "sender authentication failed",
            "отправитель не прошёл проверку подлинности",
            "Absenderauthentifizierung fehlgeschlagen",
        ],
    ),
    (
        "KATA_ALERT",
        ["KATA alert", "оповещение KATA", "KATA-Warnung"],
    ),
];

const BOUNCE_TITLE: &[Row] = &[
    (
        "BOUNCE",
        [
            "Undeliverable message",
            "Недоставленное сообщение",
            "Unzustellbare Nachricht",
        ],
    ),
    (
        "DOUBLE_BOUNCE",
        [
            "Undeliverable bounce",
            "Недоставленное уведомление о недоставке",
            "Unzustellbare Unzustellbarkeitsnachricht",
        ],
    ),
    (
        "DELAY",
        [
            "Delivery delayed",
            "Доставка задерживается",
            "Zustellung verzögert",
        ],
    ),
    (
        "RESOURCE",
        ["Resource problem", "Нехватка ресурсов", "Ressourcenproblem"],
    ),
    (
        "SOFTWARE",
        [
            "Mail system software error",
            "Программная ошибка почтовой системы",
            "Softwarefehler des Mailsystems",
        ],
    ),
    (
        "POLICY",
        [
            "Rejected by policy",
            "Отклонено политикой",
            "Durch Richtlinie abgelehnt",
        ],
    ),
    (
        "PROTOCOL",
        [
            "SMTP protocol error",
            "Ошибка протокола SMTP",
            "SMTP-Protokollfehler",
        ],
    ),
    (
        "DATA",
        [
            "Mail data error",
            "Ошибка данных сообщения",
            "Fehler in den Nachrichtendaten",
        ],
    ),
    (
        "UNKNOWN",
        [
            "Mail system notice",
            "Уведомление почтовой системы",
            "Meldung des Mailsystems",
        ],
    ),
];

const BOUNCE_EXPLAIN: &[Row] = &[
    ("BOUNCE", [
        "The message could not be delivered and was returned to the sender.",
        "Сообщение не удалось доставить, оно возвращено отправителю.",
        "Die Nachricht konnte nicht zugestellt werden und wurde an den Absender zurückgeschickt.",
    ]),
    ("DOUBLE_BOUNCE", [
        "A non-delivery notice could itself not be delivered (double bounce).",
        "Само уведомление о недоставке не удалось доставить (двойной возврат).",
        "Eine Unzustellbarkeitsnachricht konnte selbst nicht zugestellt werden (Double Bounce).",
    ]),
    ("DELAY", [
        "The message could not be delivered yet; the mail system keeps trying.",
        "Сообщение пока не доставлено; почтовая система продолжает попытки.",
        "Die Nachricht konnte noch nicht zugestellt werden; das Mailsystem versucht es weiter.",
    ]),
    ("RESOURCE", [
        "The gateway's mail system ran short of a resource (for example free disk space) and could not accept or deliver the message.",
        "Почтовой системе шлюза не хватило ресурса (например, свободного места на диске), и она не смогла принять или доставить сообщение.",
        "Dem Mailsystem des Gateways fehlte eine Ressource (zum Beispiel freier Speicherplatz), daher konnte es die Nachricht nicht annehmen oder zustellen.",
    ]),
    ("SOFTWARE", [
        "The gateway's mail system hit a software error while handling the message.",
        "Почтовая система шлюза столкнулась с программной ошибкой при обработке сообщения.",
        "Das Mailsystem des Gateways hatte bei der Verarbeitung der Nachricht einen Softwarefehler.",
    ]),
    ("POLICY", [
        "The message was rejected by a policy (for example an access or anti-spam restriction).",
        "Сообщение отклонено политикой (например, ограничением доступа или защитой от нежелательной почты).",
        "Die Nachricht wurde durch eine Richtlinie abgelehnt (zum Beispiel eine Zugangs- oder Anti-Spam-Beschränkung).",
    ]),
    ("PROTOCOL", [
        "A client or server violated the SMTP protocol during the transfer.",
        "Клиент или сервер нарушил протокол SMTP при передаче.",
        "Ein Client oder Server hat bei der Übertragung das SMTP-Protokoll verletzt.",
    ]),
    ("DATA", [
        "The message data could not be processed (for example a malformed message).",
        "Данные сообщения не удалось обработать (например, сообщение повреждено).",
        "Die Nachrichtendaten konnten nicht verarbeitet werden (zum Beispiel eine fehlerhafte Nachricht).",
    ]),
    ("UNKNOWN", [
        "The mail system reported a problem of a class unknown to this version.",
        "Почтовая система сообщила о проблеме класса, неизвестного этой версии.",
        "Das Mailsystem meldete ein Problem einer dieser Version unbekannten Klasse.",
    ]),
];

const BOUNCE_ADVICE: &[Row] = &[
    ("BOUNCE", [
        "Check the diagnostic of each recipient below; the mail system has informed the sender.",
        "Проверьте диагностику по каждому получателю ниже; почтовая система уже уведомила отправителя.",
        "Prüfen Sie die Diagnose je Empfänger unten; das Mailsystem hat den Absender benachrichtigt.",
    ]),
    ("DOUBLE_BOUNCE", [
        "Usually a forged or dead sender address; if it repeats, check for abuse.",
        "Обычно это поддельный или несуществующий адрес отправителя; если повторяется, проверьте, нет ли злоупотребления.",
        "Meist eine gefälschte oder nicht existierende Absenderadresse; bei Wiederholung auf Missbrauch prüfen.",
    ]),
    ("DELAY", [
        "Nothing to do unless the delay persists; then check the remote server and the network path to it.",
        "Действий не требуется, если задержка не затягивается; иначе проверьте удалённый сервер и сетевой путь до него.",
        "Kein Eingriff nötig, solange die Verzögerung nicht andauert; sonst den entfernten Server und den Netzwerkpfad prüfen.",
    ]),
    ("RESOURCE", [
        "Free disk space (or fix the resource shortage) on the node named below; delayed messages are retried automatically, bounced ones must be sent again.",
        "Освободите место на диске (или устраните нехватку ресурса) на указанном ниже узле; отложенные сообщения будут отправлены повторно автоматически, возвращённые нужно отправить заново.",
        "Geben Sie auf dem unten genannten Knoten Speicherplatz frei (oder beheben Sie den Ressourcenmangel); verzögerte Nachrichten werden automatisch erneut versucht, zurückgewiesene müssen neu gesendet werden.",
    ]),
    ("SOFTWARE", [
        "Look up the queue id in the mail log of the node named below; if it repeats, contact support with that log.",
        "Найдите идентификатор очереди в почтовом журнале указанного ниже узла; при повторении обратитесь в поддержку, приложив журнал.",
        "Suchen Sie die Queue-ID im Mail-Log des unten genannten Knotens; bei Wiederholung wenden Sie sich mit diesem Log an den Support.",
    ]),
    ("POLICY", [
        "Check whether the restriction is intended; adjust the policy if it rejected legitimate mail.",
        "Проверьте, ожидаемо ли это ограничение; если отклонено легитимное письмо, скорректируйте политику.",
        "Prüfen Sie, ob die Beschränkung beabsichtigt ist; passen Sie die Richtlinie an, falls legitime Post abgelehnt wurde.",
    ]),
    ("PROTOCOL", [
        "Check the remote MTA named below; repeated protocol errors from one host mean an attack or a broken client.",
        "Проверьте удалённый MTA, указанный ниже; повторяющиеся ошибки от одного узла означают атаку или неисправного клиента.",
        "Prüfen Sie den unten genannten entfernten MTA; wiederholte Protokollfehler eines Hosts deuten auf einen Angriff oder einen defekten Client hin.",
    ]),
    ("DATA", [
        "Look at the original headers below; ask the sender to send again if the message was malformed.",
        "Посмотрите исходные заголовки ниже; если сообщение повреждено, попросите отправителя отправить его заново.",
        "Sehen Sie sich die Original-Header unten an; bitten Sie den Absender um erneuten Versand, falls die Nachricht fehlerhaft war.",
    ]),
    ("UNKNOWN", [
        "Look up the queue id in the mail log of the node named below.",
        "Найдите идентификатор очереди в почтовом журнале указанного ниже узла.",
        "Suchen Sie die Queue-ID im Mail-Log des unten genannten Knotens.",
    ]),
];

const RECIPIENT_ACTION: &[Row] = &[
    ("FAILED", ["failed", "не доставлено", "fehlgeschlagen"]),
    ("DELAYED", ["delayed", "задерживается", "verzögert"]),
    ("DELIVERED", ["delivered", "доставлено", "zugestellt"]),
    ("RELAYED", ["relayed", "передано дальше", "weitergeleitet"]),
    (
        "EXPANDED",
        [
            "expanded (list)",
            "развёрнуто (список)",
            "erweitert (Verteiler)",
        ],
    ),
    ("UNKNOWN", ["unknown", "неизвестно", "unbekannt"]),
];

const ERROR_GROUP: &[Row] = &[
    ("PROTECTION", ["Protection", "Защита", "Schutz"]),
    (
        "SYNCHRONIZATION",
        ["Synchronization", "Синхронизация", "Synchronisierung"],
    ),
    (
        "LDAP_INTEGRATION",
        ["LDAP integration", "Интеграция с LDAP", "LDAP-Integration"],
    ),
    ("LICENSING", ["Licensing", "Лицензирование", "Lizenzierung"]),
    ("BACKUP", ["Backup", "Резервное хранилище", "Backup"]),
    ("SYSTEM", ["System", "Система", "System"]),
    ("UNKNOWN", ["Other", "Прочее", "Sonstiges"]),
];

const ERROR_STATUS: &[Row] = &[
    ("NEW", ["new", "новая", "neu"]),
    (
        "STILL_ACTIVE",
        ["still active", "сохраняется", "weiterhin aktiv"],
    ),
    ("RESOLVED", ["resolved", "устранена", "behoben"]),
];

const ERROR_KIND: &[Row] = &[
    (
        "AV_BASES_OUTDATED",
        [
            "Anti-Virus databases are outdated",
            "Базы Антивируса устарели",
            "Anti-Virus-Datenbanken sind veraltet",
        ],
    ),
    (
        "AS_BASES_OUTDATED",
        [
            "Anti-Spam databases are outdated",
            "Базы Анти-Спама устарели",
            "Anti-Spam-Datenbanken sind veraltet",
        ],
    ),
    (
        "AP_BASES_OUTDATED",
        [
            "Anti-Phishing databases are outdated",
            "Базы Анти-Фишинга устарели",
            "Anti-Phishing-Datenbanken sind veraltet",
        ],
    ),
    (
        "BASES_UPDATE_FAILED",
        [
            "Database update failed",
            "Ошибка обновления баз",
            "Datenbank-Update fehlgeschlagen",
        ],
    ),
    (
        "KSN_ISSUES",
        [
            "Kaspersky Security Network is unavailable",
            "Kaspersky Security Network недоступна",
            "Kaspersky Security Network ist nicht erreichbar",
        ],
    ),
    (
        "KSN_REQUESTS_FILTERED",
        [
            "KSN requests are being filtered",
            "Запросы к KSN фильтруются",
            "KSN-Anfragen werden gefiltert",
        ],
    ),
    (
        "NODE_UNAVAILABLE",
        [
            "Node is unavailable",
            "Узел недоступен",
            "Knoten ist nicht erreichbar",
        ],
    ),
    (
        "DATA_SYNC_FAILED",
        [
            "Data synchronization failed",
            "Ошибка синхронизации данных",
            "Datensynchronisierung fehlgeschlagen",
        ],
    ),
    (
        "SETTINGS_APPLY_FAILED",
        [
            "Settings could not be applied",
            "Не удалось применить параметры",
            "Einstellungen konnten nicht angewendet werden",
        ],
    ),
    (
        "TIME_MISMATCH",
        [
            "Node clock differs from the Control node",
            "Время узла расходится с узлом Control",
            "Uhrzeit des Knotens weicht vom Control-Knoten ab",
        ],
    ),
    (
        "CLUSTER_CONFIG_ISSUES",
        [
            "Cluster configuration problem",
            "Проблема конфигурации кластера",
            "Problem der Cluster-Konfiguration",
        ],
    ),
    (
        "LDAP_CONNECTION_FAILED",
        [
            "No connection to the LDAP server",
            "Нет соединения с LDAP-сервером",
            "Keine Verbindung zum LDAP-Server",
        ],
    ),
    (
        "LDAP_RULES_DATA_SAVE_FAILED",
        [
            "LDAP data for rules could not be saved",
            "Не удалось сохранить данные LDAP для правил",
            "LDAP-Daten für Regeln konnten nicht gespeichert werden",
        ],
    ),
    (
        "LDAP_AUTOFILL_DATA_SAVE_FAILED",
        [
            "LDAP autofill data could not be saved",
            "Не удалось сохранить данные LDAP для автозаполнения",
            "LDAP-Daten für die Autovervollständigung konnten nicht gespeichert werden",
        ],
    ),
    (
        "LICENSE_EXPIRES_SOON",
        [
            "License expires soon",
            "Срок действия лицензии скоро истекает",
            "Lizenz läuft bald ab",
        ],
    ),
    (
        "LICENSE_EXPIRED",
        [
            "License has expired",
            "Срок действия лицензии истёк",
            "Lizenz ist abgelaufen",
        ],
    ),
    (
        "KEY_BLOCKED",
        [
            "License key is blocked",
            "Лицензионный ключ заблокирован",
            "Lizenzschlüssel ist gesperrt",
        ],
    ),
    (
        "BACKUP_ALMOST_FULL",
        [
            "Backup storage is almost full",
            "Резервное хранилище почти заполнено",
            "Backup-Speicher ist fast voll",
        ],
    ),
    (
        "BACKUP_PLACEMENT_FAILED",
        [
            "A message could not be placed in backup",
            "Не удалось поместить сообщение в резервное хранилище",
            "Nachricht konnte nicht im Backup abgelegt werden",
        ],
    ),
    (
        "BACKUP_CLEANUP_FAILED",
        [
            "Backup cleanup failed",
            "Ошибка очистки резервного хранилища",
            "Bereinigung des Backups fehlgeschlagen",
        ],
    ),
    (
        "DISK_SPACE_LOW",
        [
            "Disk space is low",
            "Мало свободного места на диске",
            "Wenig freier Speicherplatz",
        ],
    ),
    (
        "UNKNOWN",
        [
            "Error unknown to this version",
            "Ошибка, неизвестная этой версии",
            "Dieser Version unbekannter Fehler",
        ],
    ),
];

const UPDATE_ADVICE: [&str; 3] = [
    "Check the node's update source and its connection to it, then start a database update.",
    "Проверьте источник обновлений узла и связь с ним, затем запустите обновление баз.",
    "Prüfen Sie die Update-Quelle des Knotens und die Verbindung dorthin und starten Sie dann ein Datenbank-Update.",
];
const LDAP_SAVE_ADVICE: [&str; 3] = [
    "Check free disk space on the node and the LDAP synchronization settings.",
    "Проверьте свободное место на диске узла и параметры синхронизации с LDAP.",
    "Prüfen Sie den freien Speicherplatz des Knotens und die LDAP-Synchronisierungseinstellungen.",
];
const BACKUP_ADVICE: [&str; 3] = [
    "Check the backup storage (free space, permissions) on the node named below.",
    "Проверьте резервное хранилище (свободное место, права доступа) на указанном ниже узле.",
    "Prüfen Sie den Backup-Speicher (freier Platz, Berechtigungen) auf dem unten genannten Knoten.",
];

const ERROR_ADVICE: &[Row] = &[
    ("AV_BASES_OUTDATED", UPDATE_ADVICE),
    ("AS_BASES_OUTDATED", UPDATE_ADVICE),
    ("AP_BASES_OUTDATED", UPDATE_ADVICE),
    ("BASES_UPDATE_FAILED", [
        "Check the update source, the proxy settings and the node's Internet access; the detail names the failure.",
        "Проверьте источник обновлений, параметры прокси и доступ узла в интернет; причина указана в подробностях.",
        "Prüfen Sie Update-Quelle, Proxy-Einstellungen und den Internetzugang des Knotens; die Details nennen die Ursache.",
    ]),
    ("KSN_ISSUES", [
        "Check the node's access to KSN (firewall, proxy); until then protection works with local databases only.",
        "Проверьте доступ узла к KSN (межсетевой экран, прокси); до тех пор защита работает только по локальным базам.",
        "Prüfen Sie den Zugriff des Knotens auf KSN (Firewall, Proxy); bis dahin schützt das Gateway nur mit lokalen Datenbanken.",
    ]),
    ("KSN_REQUESTS_FILTERED", [
        "A device between the node and KSN drops or alters requests; allow the node's KSN traffic.",
        "Устройство между узлом и KSN блокирует или изменяет запросы; разрешите трафик узла к KSN.",
        "Ein Gerät zwischen Knoten und KSN verwirft oder verändert Anfragen; lassen Sie den KSN-Verkehr des Knotens zu.",
    ]),
    ("NODE_UNAVAILABLE", [
        "Check that the node is running and reachable from the Control node at the address and port shown.",
        "Проверьте, что узел работает и доступен с узла Control по указанным адресу и порту.",
        "Prüfen Sie, ob der Knoten läuft und vom Control-Knoten unter der angegebenen Adresse und dem Port erreichbar ist.",
    ]),
    ("DATA_SYNC_FAILED", [
        "Check the connection between this node and the Control node; the node works with the data of its last successful synchronization.",
        "Проверьте связь узла с узлом Control; узел работает с данными последней успешной синхронизации.",
        "Prüfen Sie die Verbindung zwischen diesem Knoten und dem Control-Knoten; der Knoten arbeitet mit den Daten der letzten erfolgreichen Synchronisierung.",
    ]),
    ("SETTINGS_APPLY_FAILED", [
        "Open the node's settings on the Control node and apply them again; the detail names the failing setting.",
        "Откройте параметры узла на узле Control и примените их повторно; проблемный параметр указан в подробностях.",
        "Öffnen Sie die Einstellungen des Knotens auf dem Control-Knoten und wenden Sie sie erneut an; die Details nennen die fehlerhafte Einstellung.",
    ]),
    ("TIME_MISMATCH", [
        "Configure NTP on the node and on the Control node so that their clocks agree.",
        "Настройте NTP на узле и на узле Control, чтобы их время совпадало.",
        "Richten Sie NTP auf dem Knoten und dem Control-Knoten ein, damit die Uhren übereinstimmen.",
    ]),
    ("CLUSTER_CONFIG_ISSUES", [
        "Check the cluster's node list and roles on the Control node.",
        "Проверьте список узлов кластера и их роли на узле Control.",
        "Prüfen Sie die Knotenliste und die Rollen des Clusters auf dem Control-Knoten.",
    ]),
    ("LDAP_CONNECTION_FAILED", [
        "Check the LDAP server address, the account and its password, and the network path; rules that use LDAP groups work with the last synchronized data.",
        "Проверьте адрес LDAP-сервера, учётную запись и пароль, а также сетевой путь; правила с LDAP-группами работают по последним синхронизированным данным.",
        "Prüfen Sie Adresse des LDAP-Servers, Konto und Passwort sowie den Netzwerkpfad; Regeln mit LDAP-Gruppen arbeiten mit den zuletzt synchronisierten Daten.",
    ]),
    ("LDAP_RULES_DATA_SAVE_FAILED", LDAP_SAVE_ADVICE),
    ("LDAP_AUTOFILL_DATA_SAVE_FAILED", LDAP_SAVE_ADVICE),
    ("LICENSE_EXPIRES_SOON", [
        "Renew the license or add a reserve key before it expires; after that the databases are no longer updated.",
        "Продлите лицензию или добавьте резервный ключ до истечения срока; после этого базы перестанут обновляться.",
        "Verlängern Sie die Lizenz oder fügen Sie vor Ablauf einen Reserveschlüssel hinzu; danach werden die Datenbanken nicht mehr aktualisiert.",
    ]),
    ("LICENSE_EXPIRED", [
        "Add a valid license key now: the databases are no longer updated and protection weakens every day.",
        "Добавьте действующий лицензионный ключ: базы больше не обновляются, и защита слабеет с каждым днём.",
        "Fügen Sie jetzt einen gültigen Lizenzschlüssel hinzu: Die Datenbanken werden nicht mehr aktualisiert, der Schutz lässt täglich nach.",
    ]),
    ("KEY_BLOCKED", [
        "Ask your vendor or reseller for a new key and add it.",
        "Запросите новый ключ у поставщика и добавьте его.",
        "Fordern Sie bei Ihrem Händler einen neuen Schlüssel an und fügen Sie ihn hinzu.",
    ]),
    ("BACKUP_ALMOST_FULL", [
        "Delete old backup copies or enlarge the backup storage; once it is full, new copies are not kept.",
        "Удалите старые копии или увеличьте резервное хранилище; когда оно заполнится, новые копии сохраняться не будут.",
        "Löschen Sie alte Sicherungskopien oder vergrößern Sie den Backup-Speicher; ist er voll, werden keine neuen Kopien aufbewahrt.",
    ]),
    ("BACKUP_PLACEMENT_FAILED", BACKUP_ADVICE),
    ("BACKUP_CLEANUP_FAILED", BACKUP_ADVICE),
    ("DISK_SPACE_LOW", [
        "Free disk space on the node: when it runs out, the mail system stops accepting mail.",
        "Освободите место на диске узла: когда оно закончится, почтовая система перестанет принимать почту.",
        "Geben Sie Speicherplatz auf dem Knoten frei: Ist er erschöpft, nimmt das Mailsystem keine Post mehr an.",
    ]),
    ("UNKNOWN", [
        "See the detail and the gateway's own console.",
        "См. подробности и консоль самого шлюза.",
        "Siehe Details und die Konsole des Gateways.",
    ]),
];

const ATTRIBUTE: &[Row] = &[
    (
        "outdated_days",
        [
            "Days without update",
            "Дней без обновления",
            "Tage ohne Update",
        ],
    ),
    (
        "bases_issue_date",
        ["Databases released", "Дата выпуска баз", "Datenbanken vom"],
    ),
    ("free_bytes", ["Free bytes", "Свободно байт", "Freie Bytes"]),
    ("expires_at", ["Expires", "Истекает", "Läuft ab"]),
    (
        "days_left",
        ["Days left", "Осталось дней", "Verbleibende Tage"],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{
        BounceClass, DetectionModule, ErrorGroup, ErrorKind, MessageAction, ObjectAction,
        RecipientAction,
    };

    #[test]
    fn every_contract_code_has_a_label_in_every_language() {
        for lang in [Lang::En, Lang::Ru, Lang::De] {
            for k in ErrorKind::ALL {
                assert!(pick(ERROR_KIND, k.as_str(), lang).is_some(), "{k}");
                assert!(pick(ERROR_ADVICE, k.as_str(), lang).is_some(), "{k}");
            }
            for g in ErrorGroup::ALL {
                assert!(pick(ERROR_GROUP, g.as_str(), lang).is_some(), "{g}");
            }
            for c in BounceClass::ALL {
                for t in [BOUNCE_TITLE, BOUNCE_EXPLAIN, BOUNCE_ADVICE] {
                    assert!(pick(t, c.as_str(), lang).is_some(), "{c}");
                }
            }
            for a in RecipientAction::ALL {
                assert!(pick(RECIPIENT_ACTION, a.as_str(), lang).is_some(), "{a}");
            }
            for a in MessageAction::ALL {
                assert!(pick(MESSAGE_ACTION, a.as_str(), lang).is_some(), "{a}");
            }
            for a in ObjectAction::ALL {
                assert!(pick(OBJECT_ACTION, a.as_str(), lang).is_some(), "{a}");
            }
            for m in DetectionModule::ALL {
                assert!(pick(MODULE, m.as_str(), lang).is_some(), "{m}");
            }
        }
    }

    #[test]
    fn a_language_without_a_table_reads_english_and_unknown_statuses_show_their_code() {
        assert_eq!(Lang::from_code("fr"), Lang::En);
        assert_eq!(Lang::Ru.status("INFECTED"), "заражён");
        assert_eq!(Lang::De.status("NEW_STATUS_X"), "NEW_STATUS_X");
    }
}
