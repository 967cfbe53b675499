package synth

// The proportions and rates below are the generator's assumptions, loosely
// after published WMT cohorts (Nanjing's CMTS series: adverse events in
// about 8-10% of patients, mostly mild and transient, more after mid-gut
// than colonic delivery). They are tuning knobs for realistic volume, not
// clinical claims.

const (
	canonical   = "http://fmtbank.org/fhir"
	sd          = canonical + "/StructureDefinition/"
	cs          = canonical + "/CodeSystem/"
	sid         = canonical + "/sid/"
	icd10       = "http://hl7.org/fhir/sid/icd-10"
	snomed      = "http://snomed.info/sct"
	loinc       = "http://loinc.org"
	v3Interp    = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
	aeSerious   = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
	aeSeverity  = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
	aeOutcome   = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
	riskProb    = "http://terminology.hl7.org/CodeSystem/risk-probability"
	condClin    = "http://terminology.hl7.org/CodeSystem/condition-clinical"
	condVer     = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
	obsCategory = "http://terminology.hl7.org/CodeSystem/observation-category"
)

// Tenant is a unit that writes data: a stool bank, a hospital or an
// authority. IDs match testdata/trust.json.
type Tenant struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	NameZh string `json:"nameZh"`
}

// banks, hospitals and authority are the tenants of every generated
// registry (Tenants), never changed.
var (
	banks = []Tenant{
		{ID: "bank-xa", Kind: "bank", Name: "Xi'an microbiota bank", NameZh: "西安菌群库"},
		{ID: "bank-nj", Kind: "bank", Name: "Nanjing microbiota bank", NameZh: "南京菌群库"},
	}
	hospitals = []Tenant{
		{ID: "hospital-a", Kind: "hospital", Name: "Hospital A", NameZh: "甲医院"},
		{ID: "hospital-b", Kind: "hospital", Name: "Hospital B", NameZh: "乙医院"},
		{ID: "hospital-c", Kind: "hospital", Name: "Hospital C", NameZh: "丙医院"},
	}
	authority = Tenant{ID: "nhc", Kind: "authority", Name: "National Health Commission", NameZh: "国家卫生健康委员会"}
)

// hospitalShare is the share of recipients each hospital treats;
// bankOf[h] the chance that a procedure of hospital h uses each bank's lot.
var (
	hospitalShare = []float64{0.45, 0.35, 0.20}
	bankOf        = [][]float64{{0.85, 0.15}, {0.15, 0.85}, {0.5, 0.5}}
)

// indication is a disease treated, with how it is treated and followed.
type indication struct {
	system, code, en, zh string
	share                float64
	// ages (years) at first procedure: uniform in [minAge, maxAge]
	minAge, maxAge int
	courses        []float64 // chance of 1, 2, 3 courses
	routes         []weighted
	aeMult         float64 // adverse-event rate multiplier
	response       float64 // chance a patient responds
	score          string  // efficacy-measure of the disease score, "" none
	remission      bool    // clinical-remission assessed (IBD)
}

type weighted struct {
	code string
	w    float64
}

var indications = []indication{
	{icd10, "A04.7", "C. difficile enterocolitis", "艰难梭菌性小肠结肠炎", 0.06, 45, 90, []float64{0.85, 0.15, 0}, []weighted{{"colonoscopy", 0.5}, {"colonic-tet", 0.3}, {"capsule", 0.1}, {"enema", 0.1}}, 1.2, 0.9, "", false},
	{icd10, "K51", "Ulcerative colitis", "溃疡性结肠炎", 0.22, 18, 70, []float64{0.4, 0.35, 0.25}, []weighted{{"colonic-tet", 0.55}, {"colonoscopy", 0.25}, {"enema", 0.1}, {"capsule", 0.1}}, 1.3, 0.6, "partial-mayo", true},
	{icd10, "K50", "Crohn's disease", "克罗恩病", 0.12, 14, 60, []float64{0.4, 0.35, 0.25}, []weighted{{"mid-gut-tet", 0.5}, {"gastroscopy", 0.2}, {"nasojejunal", 0.15}, {"colonic-tet", 0.15}}, 1.4, 0.55, "hbi", true},
	{icd10, "K58", "Irritable bowel syndrome", "肠易激综合征", 0.12, 18, 70, []float64{0.6, 0.3, 0.1}, []weighted{{"mid-gut-tet", 0.4}, {"colonic-tet", 0.3}, {"capsule", 0.2}, {"gastroscopy", 0.1}}, 0.8, 0.6, "ibs-sss", false},
	{icd10, "K59.0", "Constipation", "便秘", 0.24, 16, 85, []float64{0.55, 0.3, 0.15}, []weighted{{"colonic-tet", 0.5}, {"mid-gut-tet", 0.2}, {"capsule", 0.2}, {"enema", 0.1}}, 0.7, 0.55, "csbm-per-week", false},
	{cs + "other-indication", "radiation-enteritis", "Radiation enteritis", "放射性肠炎", 0.06, 35, 80, []float64{0.6, 0.3, 0.1}, []weighted{{"mid-gut-tet", 0.5}, {"colonic-tet", 0.5}}, 1.0, 0.5, "", false},
	{cs + "other-indication", "hepatic-encephalopathy", "Hepatic encephalopathy", "肝性脑病", 0.04, 40, 80, []float64{0.6, 0.3, 0.1}, []weighted{{"nasojejunal", 0.4}, {"mid-gut-tet", 0.4}, {"enema", 0.2}}, 1.5, 0.5, "", false},
	{cs + "other-indication", "autism", "Autism spectrum disorder", "孤独症谱系障碍", 0.08, 3, 15, []float64{0.3, 0.4, 0.3}, []weighted{{"capsule", 0.4}, {"mid-gut-tet", 0.4}, {"gastroscopy", 0.2}}, 0.6, 0.5, "", false},
	{cs + "other-indication", "other", "Other indication", "其他适应证", 0.06, 10, 85, []float64{0.6, 0.3, 0.1}, []weighted{{"mid-gut-tet", 0.3}, {"colonic-tet", 0.3}, {"colonoscopy", 0.2}, {"capsule", 0.2}}, 1.0, 0.5, "", false},
}

// route is a delivery route: its English and Chinese names, how many
// sessions a course has, the dose range in units and the adverse-event
// rate multiplier.
type route struct {
	en, zh           string
	sessions         []float64 // chance of 1, 2, 3 sessions a course
	minDose, maxDose int
	aeMult           float64
	upper            bool // delivered to the upper gut (nausea, vomiting)
	capsule          bool
}

var routes = map[string]route{
	"mid-gut-tet": {"mid-gut TET", "中消化道经内镜肠道植管", []float64{0.15, 0.25, 0.6}, 3, 6, 1.2, true, false},
	"colonic-tet": {"colonic TET", "结肠经内镜肠道植管", []float64{0.15, 0.25, 0.6}, 5, 10, 0.9, false, false},
	"colonoscopy": {"colonoscopy", "结肠镜", []float64{0.7, 0.2, 0.1}, 5, 10, 1.0, false, false},
	"gastroscopy": {"gastroscopy", "胃镜", []float64{0.7, 0.2, 0.1}, 3, 6, 1.3, true, false},
	"nasojejunal": {"nasojejunal tube", "鼻空肠管", []float64{0.15, 0.25, 0.6}, 3, 6, 1.3, true, false},
	"capsule":     {"capsules", "胶囊", []float64{0.3, 0.3, 0.4}, 1, 3, 0.5, true, true},
	"enema":       {"enema", "灌肠", []float64{0.3, 0.3, 0.4}, 5, 10, 0.6, false, false},
}

// aeBase is the chance that a procedure is followed by an adverse event,
// before the route's and the indication's multipliers.
const aeBase = 0.026

// aeTerms are the event terms with their weights after upper-gut and
// lower-gut delivery.
var aeTerms = []struct {
	code, en, zh string
	upper, lower float64
}{
	{"fever", "Fever", "发热", 0.22, 0.18},
	{"diarrhoea", "Diarrhoea", "腹泻", 0.18, 0.28},
	{"abdominal-pain", "Abdominal pain", "腹痛", 0.14, 0.20},
	{"bloating", "Bloating", "腹胀", 0.14, 0.14},
	{"nausea", "Nausea", "恶心", 0.12, 0.02},
	{"vomiting", "Vomiting", "呕吐", 0.08, 0.01},
	{"flatulence", "Flatulence", "排气增多", 0.06, 0.10},
	{"haematochezia", "Haematochezia", "便血", 0.01, 0.03},
	{"infection", "Infection", "感染", 0.02, 0.02},
	{"other", "Other", "其他", 0.03, 0.02},
}

var relatedness = []weighted{{"definitely", 0.08}, {"probably", 0.27}, {"possibly", 0.40}, {"unlikely", 0.15}, {"unrelated", 0.10}}

var relatednessDisplay = map[string][2]string{
	"definitely": {"Definitely related", "肯定有关"}, "probably": {"Probably related", "很可能有关"},
	"possibly": {"Possibly related", "可能有关"}, "unlikely": {"Unlikely related", "可能无关"}, "unrelated": {"Unrelated", "无关"},
}

// followUps are the follow-up time points: target day after the course's
// last procedure, window (± days) and the chance the visit is missed.
var followUps = []struct {
	code     string
	day, win int
	missed   float64
	en, zh   string
}{
	{"w1", 7, 3, 0.08, "Week 1", "第1周"},
	{"w4", 28, 3, 0.10, "Week 4", "第4周"},
	{"w8", 56, 7, 0.12, "Week 8", "第8周"},
	{"w12", 84, 7, 0.12, "Week 12", "第12周"},
	{"m6", 182, 30, 0.18, "Month 6", "第6个月"},
	{"m12", 365, 30, 0.22, "Month 12", "第12个月"},
	{"m24", 730, 30, 0.30, "Month 24", "第24个月"},
}

// screening tests of donor candidates, by stage: a candidate who fails a
// stage is excluded and screened no further. Codes without a LOINC code
// carry text only.
type screenTest struct {
	loinc, en, zh string
}

var screenStages = []struct {
	pass  float64
	tests []screenTest
}{
	{0.30, []screenTest{{"", "Donor health questionnaire and interview", "供体健康问卷与面谈"}}},
	{0.40, []screenTest{
		{"5196-1", "Hepatitis B virus surface Ag [Presence] in Serum", "乙型肝炎病毒表面抗原"},
		{"16128-1", "Hepatitis C virus Ab [Presence] in Serum", "丙型肝炎病毒抗体"},
		{"7917-8", "HIV 1 Ab [Presence] in Serum", "人类免疫缺陷病毒抗体"},
		{"22587-0", "Treponema pallidum Ab [Presence] in Serum", "梅毒螺旋体抗体"},
		{"", "Hepatitis A and E virus IgM", "甲型和戊型肝炎病毒IgM"},
		{"", "HTLV-1/2 antibodies", "人类嗜T淋巴细胞病毒抗体"},
		{"", "Cytomegalovirus and Epstein-Barr virus IgM", "巨细胞病毒和EB病毒IgM"},
	}},
	{0.25, []screenTest{
		{"", "Stool Clostridioides difficile toxin A/B", "粪便艰难梭菌毒素A/B"},
		{"", "Stool enteric pathogens panel (Salmonella, Shigella, STEC, EPEC)", "粪便肠道病原体检测"},
		{"", "Stool multidrug-resistant organisms culture (ESBL, CRE, VRE, MRSA)", "粪便多重耐药菌培养"},
		{"", "Stool enteric viruses (norovirus, rotavirus)", "粪便肠道病毒检测"},
		{"", "Stool ova and parasites", "粪便寄生虫及虫卵"},
	}},
}

// lot production: share of capsule lots, chance a lot fails QC (discarded)
// and that a released lot is recalled later, shelf lives.
const (
	capsuleShare   = 0.15
	maxLotGap      = 45 // days
	discardRate    = 0.04
	recallRate     = 0.02
	suspensionDays = 180
	capsuleDays    = 365
	// procsPerLot is how many procedures a lot serves on average; it sets
	// how many lots a registry needs.
	procsPerLot = 8.0
	// lotsPerDonor sets how many qualified donors a bank needs.
	lotsPerDonor = 60.0
)

var surnames = [][2]string{{"王", "Wang"}, {"李", "Li"}, {"张", "Zhang"}, {"刘", "Liu"}, {"陈", "Chen"}, {"杨", "Yang"}, {"黄", "Huang"}, {"赵", "Zhao"}, {"吴", "Wu"}, {"周", "Zhou"},
	{"徐", "Xu"}, {"孙", "Sun"}, {"马", "Ma"}, {"朱", "Zhu"}, {"胡", "Hu"}, {"郭", "Guo"}, {"何", "He"}, {"高", "Gao"}, {"林", "Lin"}, {"罗", "Luo"}}

var givenChars = [][2]string{{"伟", "Wei"}, {"芳", "Fang"}, {"娜", "Na"}, {"敏", "Min"}, {"静", "Jing"}, {"丽", "Li"}, {"强", "Qiang"}, {"磊", "Lei"}, {"军", "Jun"}, {"洋", "Yang"},
	{"勇", "Yong"}, {"艳", "Yan"}, {"杰", "Jie"}, {"娟", "Juan"}, {"涛", "Tao"}, {"明", "Ming"}, {"超", "Chao"}, {"秀", "Xiu"}, {"霞", "Xia"}, {"平", "Ping"},
	{"刚", "Gang"}, {"桂", "Gui"}, {"英", "Ying"}, {"华", "Hua"}, {"玲", "Ling"}, {"建", "Jian"}, {"国", "Guo"}, {"文", "Wen"}, {"辉", "Hui"}, {"鹏", "Peng"}}
