# ruff: noqa: E501  (Chinese paragraphs stay one line each: a hard wrap would show as a line break)
"""The demo service agreement: the portal's own wording, written for the demo.

Chinese first, then English (R-ADM-6). tests/test_agreement_text.py checks the
clauses that describe enforced rules (deduction order, refunds, invoices,
dispute locks, resource packages, spend limits) against what the code does, so the text cannot drift from them.
"""

DEMO_AGREEMENT_TITLE = "余额与充值条款（演示） / Balance and Top-up Terms (demo)"

DEMO_AGREEMENT_BODY_ZH = """\
一、适用范围
本条款约定您在本平台预存、用于支付模型 API 调用费用的余额：资金如何充入、如何使用、未使用的资金如何退回。

二、余额账户
每个注册账户有且只有一个余额账户，其中包括您支付的现金、我们发放的试用金以及您获得的赠送金。余额不能转让给其他账户。

三、首次充值前
您须为能够独立订立合同的成年人（或年满 16 周岁、以自己的劳动收入为主要生活来源，并经我们的工作人员核实），且账户已通过实名认证。一个身份只能拥有一个已认证账户。

四、充值
您可以通过在线支付渠道充值，也可以向充值页面所示账户银行转账。转账在我们能将其与您的账户对应后入账。以他人名义支付的充值可能需要核查。

五、试用金与赠送金
试用金是每个身份一次性的欢迎奖励，在发放时注明的期限届满后失效；未满18周岁、不具有完全民事行为能力的实名用户不能充值，也不获得试用金。赠送金与获得它的那笔充值相关联，只按该笔充值中成为可用现金的部分计算：用于偿还欠费或争议欠款的部分不产生赠送金。二者均不可退款，也不可开具发票。

六、余额的使用
每次 API 调用按量计价，从余额中扣除，扣除顺序为：先试用金（先到期的先用），再赠送金，最后现金（先充值的先用）。不足一分的金额按精确值记录。

七、退款
您可以申请退回某笔充值中未消费的现金，每笔充值只能退款一次；已开具发票但未消费的金额不可退款。该笔充值获得的赠送金中已使用的部分从退款中扣除；退款审核通过时，这部分金额从余额中扣回，该笔充值的赠送金作废，不再可用。审核通过后，款项原路退回付款账户。

八、发票
您可以就实际消费的现金申请开具发票；试用金和赠送金不开具发票。

九、账户限制
账户违反本条款时我们可以暂停服务；第三方对某笔充值提出争议时，我们可以锁定账户，您须在 30 天内提供权利人事先同意的证据，否则争议金额将从您的现金余额中原路退还权利人；有权机关要求时我们可以冻结账户。我们会告知您原因。

十、个人信息
您的证件号码和材料加密存储，工作人员仅能看到脱敏后的信息；确需查看完整信息的少数人员每次查看都会被记录。

十一、条款变更
新版本生效前我们会提前公告。生效后的充值需要您接受新版本。

十二、资源包
资源包按其价格从余额中购买：须有足够支付全部价格的可用余额，否则不购买、不扣款；价格按第六条的顺序扣除，扣除前先结算已发生但尚未结算的调用。调用资源包所含模型时，先由资源包抵扣（先到期的资源包先用），不足部分再按第六条扣除。资源包自购买起在标明的有效天数内有效，到期前 3 天我们会提醒您，到期时未使用的额度失效。到期前发生的调用即使在到期后结算，仍由资源包抵扣。购买资源包所支付的金额属于已消费金额，不可退款，可作为实际消费的现金开具发票。

十三、消费限额
您可以为整个账户和每个 API 密钥分别设置月度（按北京时间自然月）和/或每日消费限额，并选择硬限额或软限额。消费额包括本期已结算和尚未结算的调用，资源包抵扣的部分也计算在内。达到硬限额后，API 调用将被拒绝，直至本期结束或您提高限额；已在进行中的调用仍会计量和扣费，因此实际消费可能略超过限额。软限额只发送提醒。消费额达到限额的 50%、80% 和 100% 时，我们各通知您一次（每个限额每期一次）。
"""

DEMO_AGREEMENT_BODY_EN = """\
1. What these terms cover
These terms govern the prepaid balance you keep with us to pay for model API
calls: how money gets in, how it is used, and how unused money comes back.

2. Your balance account
Every registered account has one balance account. It holds the cash you paid
in, any trial funds we granted you, and any discount (bonus) money you earned.
A balance cannot be moved to another account.

3. Before your first top-up
You must be an adult able to enter contracts on your own (or aged 16 or more
and living on your own income, which our staff will check), and your account
must have passed real-name verification. One identity can hold one verified
account.

4. Paying in
You can pay in through the online payment channel or by bank transfer to the
account shown on the top-up page. A transfer is credited once we can match it
to your account. Top-ups in the name of someone else may be held for checks.

5. Trial funds and discounts
Trial funds are a one-time welcome grant per identity and expire after the
period shown when granted; a verified account holder under 18 without full civil
capacity, who may not top up, receives none. Discounts are tied to the top-up that
earned them and are earned only on the part of it that became spendable cash: the
part that paid arrears or a dispute debt earns nothing. Neither can be refunded or
invoiced.

6. Using your balance
Each API call is priced per use and paid from your balance: trial funds first
(the soonest to expire first), then discounts, then cash (the oldest top-up
first). Prices in fractions of a fen are kept exactly.

7. Refunds
You can ask for the unused cash of a top-up back, once per top-up; cash that
was invoiced and not consumed cannot be refunded. The discount that top-up earned
and you used is deducted from the refund; when the refund is approved that amount
leaves your balance and the top-up's discounts are void, so nothing of them stays
spendable. It is paid to the account it came from after review.

8. Invoices
You can ask for an invoice for cash you have actually used; trial funds and
discounts are never invoiced.

9. When we may restrict an account
We may suspend an account that breaks these terms, lock it while a third party
disputes one of its top-ups (without evidence of the rights holder's consent
within 30 days, the disputed amount goes back to the rights holder from your
cash), or freeze it when an authority orders us to. We tell you why.

10. Your personal data
Your ID number and documents are stored encrypted and shown to staff only in
masked form, except to the few who need the full data, and each such look is
recorded.

11. Changes to these terms
We announce a new version before it takes effect. Top-ups after that date
need your acceptance of the new version.

12. Resource packages
You buy a resource package from your balance at its price: the full price must
be available, otherwise nothing is bought or taken. The price is taken in the
order of clause 6, after the calls received but not yet settled are settled.
Calls to a model a package covers are paid by that package first (the soonest
to expire first); any rest follows clause 6. A package is valid for the number
of days shown from its purchase; we remind you 3 days before it expires, and
its unused part then expires. Calls received before the expiry are paid by the
package even when settled after it. What you pay for a package is consumed
money: it is not refundable, and it can be invoiced as cash you have used.

13. Spend limits
You can set a monthly (calendar month, Beijing time) and/or a daily spend
limit on the whole account and on each API key, hard or soft. Spend counts
the period's settled and not yet settled calls, package use included. Once a
hard limit is reached, API calls are refused until the period ends or you
raise the limit; calls already in flight are still metered and charged, so
spend can slightly exceed it. A soft limit only alerts you. We tell you once
per limit and period when spend reaches 50 %, 80 % and 100 % of it.
"""

DEMO_AGREEMENT_BODY = DEMO_AGREEMENT_BODY_ZH + "\n——— English ———\n\n" + DEMO_AGREEMENT_BODY_EN
